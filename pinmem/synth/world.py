"""Writing a multi-domain world: every style's train and val scenes in its dataset's native layout.

``generate_world(out, styles, ...)`` writes ``out/<style name>/`` for each style (the shipped styles are named
after their dataset) through :func:`pinmem.data.writers.build_writer`, then a ``synth.json`` manifest with the
parameters. A folder whose manifest matches is skipped, so callers can generate idempotently. Train scene ``i``
is scene index ``i``; val scene ``i`` is index ``VAL_OFFSET + i``, so changing one split's size never changes
the other split's pictures. Scenes are rendered in worker processes and written in index order by the parent:
the files are the same whatever the number of workers.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from pinmem.data.base import GENERATED_WORLD_MANIFEST
from pinmem.data.folder_writer import FolderWriter
from pinmem.data.writers import build_writer
from pinmem.errors import PinmemError
from pinmem.synth.scene import Scene, render_scene, render_size
from pinmem.synth.style import Style
from pinmem.synth.style_io import load_style

MANIFEST = GENERATED_WORLD_MANIFEST
VAL_OFFSET = 1_000_000
#: bump when the generator's output changes for the same parameters, so stale worlds are regenerated
GENERATOR_VERSION = 1
JPEG_FORMATS = ("bdd100k", "mapillary")

Counts = int | Mapping[str, int]


def scene_indices(num_train: int, num_val: int) -> list[tuple[str, int]]:
    """``(split, scene index)`` in writing order."""
    return [("train", i) for i in range(num_train)] + [("val", VAL_OFFSET + i) for i in range(num_val)]


def manifest_for(style: Style, num_train: int, num_val: int, size: tuple[int, int], seed: int,
                 folder_classes: str | None = None) -> dict:
    """``folder_classes``: a folder dataset with that class set (``format: folder``) instead of the native layout."""
    extra = {"classes": folder_classes} if folder_classes else {}
    return {
        **extra,
        "generator": "pinmem.synth", "version": GENERATOR_VERSION, "style": style.name,
        "format": "folder" if folder_classes else style.format,
        "style_digest": style.digest, "num_train": num_train, "num_val": num_val, "size": list(size),
        "image_size": list(render_size(style, size)), "seed": seed,
        # the evaluation protocol of this world: whole image at its native size, for every style (read by
        # pinmem.data.base.generated_world_protocol, so eval, the demo and the benchmark agree)
        "evaluation": {"mode": "whole", "height": None, "center_crop": None},
    }


def read_manifest(root: Path) -> dict | None:
    try:
        return json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def is_complete(root: Path, expected: dict) -> bool:
    found = read_manifest(root)
    return bool(found) and found.get("complete") is True and {k: found.get(k) for k in expected} == expected


def _count(counts: Counts, name: str) -> int:
    value = counts.get(name, 0) if isinstance(counts, Mapping) else counts
    if int(value) < 0:
        raise PinmemError(f"synth: negative image count {value} for style {name}")
    return int(value)


def generate_world(
    out: str | Path,
    styles: Iterable[str | Path | Style] = ("gtav", "synthia", "idd", "cityscapes", "bdd100k", "mapillary"),
    num_train: Counts = 100,
    num_val: Counts = 50,
    size: tuple[int, int] = (512, 256),
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
    force: bool = False,
    folder_classes: str | None = None,
) -> dict[str, Path]:
    """Write each style's world under ``out/<style name>/``; returns style name -> dataset root.

    ``styles`` are shipped style names, style file paths or :class:`Style` objects; ``num_train``/``num_val``
    are one count for every style or a mapping style name -> count; ``size`` is (width, height) before each
    style's ``camera.resolution_scale``. A root whose ``synth.json`` matches these parameters is left as it is
    (unless ``force``). ``workers`` > 1 renders in that many processes; the files do not depend on it.
    ``folder_classes`` (``cityscapes`` or ``categories``): write folder datasets (docs/own-data.md) instead of the
    styles' native layouts.
    """
    size = (int(size[0]), int(size[1]))
    loaded = [load_style(s) for s in styles]
    names = [s.name for s in loaded]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise PinmemError(f"synth: two styles are named {duplicates[0]!r}; each style writes out/<name>/")
    jobs = {s.name: (_count(num_train, s.name), _count(num_val, s.name)) for s in loaded}
    roots = {s.name: Path(out) / s.name for s in loaded}
    todo = [s for s in loaded
            if force or not is_complete(roots[s.name], manifest_for(s, *jobs[s.name], size, seed, folder_classes))]
    pool = ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(todo,)) if workers > 1 and todo else None
    try:
        for style in todo:
            generate_domain(roots[style.name], style, *jobs[style.name], size, seed, pool=pool, progress=progress,
                            force=True, folder_classes=folder_classes)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return roots


def generate_domain(root: Path, style: Style, num_train: int, num_val: int, size: tuple[int, int], seed: int,
                    pool: ProcessPoolExecutor | None = None, progress: bool = True, force: bool = False,
                    folder_classes: str | None = None) -> Path:
    """Write one style's train and val scenes under ``root`` in its dataset's format (skipped when up to date).

    ``pool``: worker processes started with :func:`_init_worker` and this style among theirs.
    """
    if num_train + num_val == 0:
        raise PinmemError(f"synth: style {style.name} would get no images (num_train and num_val are 0)")
    size = (int(size[0]), int(size[1]))
    expected = manifest_for(style, num_train, num_val, size, seed, folder_classes)
    if not force and is_complete(root, expected):
        return root
    _prepare(root)
    (root / MANIFEST).write_text(json.dumps({**expected, "complete": False}, indent=1))
    options = {"jpeg_quality": style.sensor.jpeg_quality} if style.format in JPEG_FORMATS else {}
    writer = (FolderWriter(root, folder_classes) if folder_classes else build_writer(style.format, root, **options))
    jobs = scene_indices(num_train, num_val)
    scenes = _render_all(style, [i for _, i in jobs], size, seed, pool)
    with tqdm(total=len(jobs), desc=f"synth {style.name}", unit="img", disable=not progress) as bar:
        for (split, _), scene in zip(jobs, scenes, strict=True):
            writer.write(split, scene.image, scene.label)
            bar.update(1)
    writer.finish()
    (root / MANIFEST).write_text(json.dumps({**expected, "complete": True}, indent=1))
    return root


def _prepare(root: Path) -> None:
    """Empty ``root`` if it holds an earlier synthetic world; refuse to touch anything else."""
    if root.exists() and any(root.iterdir()):
        if read_manifest(root) is None:
            raise PinmemError(
                f"synth: {root} exists and is not a synthetic world (no {MANIFEST}); choose another --out or "
                "remove it"
            )
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)


_WORKER_STYLES: dict[str, Style] = {}


def _init_worker(styles: Sequence[Style]) -> None:
    _WORKER_STYLES.clear()
    _WORKER_STYLES.update({s.name: s for s in styles})


def _render_one(args: tuple[str, int, tuple[int, int], int]) -> Scene:
    name, index, size, seed = args
    return render_scene(_WORKER_STYLES[name], seed, index, size)


def _render_all(style: Style, indices: Sequence[int], size: tuple[int, int], seed: int,
                pool: ProcessPoolExecutor | None) -> Iterator[Scene]:
    """Scenes in index order, rendered here or by the pool's workers."""
    if pool is None or len(indices) < 2:
        for index in indices:
            yield render_scene(style, seed, index, size)
        return
    yield from pool.map(_render_one, [(style.name, i, size, seed) for i in indices], chunksize=4)
