"""``dataset.yaml``: the one file that makes a folder of images and labels a dataset (docs/own-data.md).

:func:`load_spec` reads and checks it; every mistake is a :class:`~pinmem.errors.DatasetLayoutError` of one line
naming the file and the key.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pinmem.data.classes import CITYSCAPES, MAX_CLASSES, ClassSet, Colour, generated_palette
from pinmem.data.labels import IGNORE
from pinmem.errors import DatasetLayoutError

DATASET_FILE = "dataset.yaml"
ENCODINGS = ("train_ids", "ids", "palette")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
KEYS = ("name", "classes", "label_encoding", "palette", "ignore_index", "id_to_train", "unknown_colour",
        "ignore_colours", "images", "labels", "image_suffix", "label_suffix", "splits", "eval_height")


@dataclass
class FolderSpec:
    """What ``dataset.yaml`` says (defaults filled in)."""

    path: Path
    classes: ClassSet
    encoding: str
    ignore_index: int = IGNORE
    id_to_train: dict[int, int] = field(default_factory=dict)
    #: palette encoding: ``error`` (a colour not in the palette stops training, `data check` lists it) or ``ignore``
    unknown_colour: str = "error"
    ignore_colours: tuple[Colour, ...] = ()
    images: str = "images"
    labels: str = "labels"
    image_suffixes: tuple[str, ...] = IMAGE_SUFFIXES
    label_suffix: str = ".png"
    #: split name -> list file (relative to the root); None: ``images/<split>`` and ``labels/<split>`` folders
    splits: dict[str, str] | None = None
    eval_height: int | None = None

    @property
    def root(self) -> Path:
        return self.path.parent

    def describe_encoding(self) -> str:
        """The valid label values, in words (for errors)."""
        if self.encoding == "train_ids":
            return f"train_ids 0..{len(self.classes) - 1} and ignore_index {self.ignore_index}"
        if self.encoding == "ids":
            return f"ids mapped by id_to_train ({len(self.id_to_train)} ids)"
        return f"the {len(self.classes)} palette colours" + (" and ignore_colours" if self.ignore_colours else "")


def is_folder_dataset(root: str | Path) -> bool:
    """True if ``root`` holds a ``dataset.yaml``."""
    return (Path(root).expanduser() / DATASET_FILE).is_file()


def _fail(path: Path, key: str, message: str) -> DatasetLayoutError:
    return DatasetLayoutError(f"{path}: {key}: {message} (see docs/own-data.md)")


def _colour(path: Path, key: str, value: Any) -> Colour:
    if (not isinstance(value, (list, tuple)) or len(value) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value)):
        raise _fail(path, key, f"{value!r} is not an [r, g, b] colour of three integers in 0..255")
    return (int(value[0]), int(value[1]), int(value[2]))


def _int(path: Path, key: str, value: Any, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _fail(path, key, f"{value!r} is not an integer in {low}..{high}")
    return value


def _classes(path: Path, data: dict[str, Any]) -> tuple[str, ...] | None:
    """The class names, or None for ``cityscapes``."""
    if "classes" not in data:
        raise _fail(path, "classes", "missing: give a list of class names, or cityscapes for the 19 trainIds")
    value = data["classes"]
    if isinstance(value, str) and value.strip().lower() == "cityscapes":
        return None
    if not isinstance(value, list) or not value:
        raise _fail(path, "classes", f"{value!r} is neither a list of class names nor cityscapes")
    names = tuple(str(v) for v in value)
    if len(names) > MAX_CLASSES:
        raise _fail(path, "classes", f"{len(names)} classes; at most {MAX_CLASSES} (255 is ignore)")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise _fail(path, "classes", f"{duplicates[0]!r} is listed twice")
    return names


def _suffixes(path: Path, key: str, value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(s, str) and s for s in items):
        raise _fail(path, key, f"{value!r} is not a file-name ending such as .png or a list of them")
    return tuple(s.lower() for s in items)


def load_spec(root: str | Path) -> FolderSpec:
    """Read and check ``root/dataset.yaml``."""
    path = Path(root).expanduser() / DATASET_FILE
    if not path.is_file():
        raise DatasetLayoutError(f"{path} not found: a folder dataset is described by a dataset.yaml at its root "
                                 "(see docs/own-data.md)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DatasetLayoutError(f"{path}: not readable YAML: {first}") from err
    if not isinstance(data, dict):
        raise DatasetLayoutError(f"{path}: the top level must be a mapping of keys (classes, label_encoding, ...)")
    for key in data:
        if key not in KEYS:
            close = difflib.get_close_matches(str(key), KEYS, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f" (valid: {', '.join(KEYS)})"
            raise _fail(path, str(key), f"unknown key{hint}")
    names = _classes(path, data)
    count = len(CITYSCAPES) if names is None else len(names)
    encoding = data.get("label_encoding")
    if encoding is None:
        raise _fail(path, "label_encoding", f"missing: one of {', '.join(ENCODINGS)}")
    if encoding not in ENCODINGS:
        raise _fail(path, "label_encoding", f"{encoding!r} is not one of {', '.join(ENCODINGS)}")
    palette: tuple[Colour, ...] | None = None
    if "palette" in data:
        raw = data["palette"]
        if not isinstance(raw, list) or len(raw) != count:
            got = len(raw) if isinstance(raw, list) else repr(raw)
            raise _fail(path, "palette", f"give one [r, g, b] per class ({count}), got {got}")
        palette = tuple(_colour(path, f"palette[{i}]", c) for i, c in enumerate(raw))
        if len(set(palette)) != len(palette):
            raise _fail(path, "palette", "two classes share a colour")
    elif encoding == "palette":
        raise _fail(path, "palette", f"missing: label_encoding palette needs one [r, g, b] per class ({count})")
    if palette is None:
        palette = CITYSCAPES.palette if names is None else generated_palette(count)
    classes = ClassSet(CITYSCAPES.names if names is None else names, palette)
    spec = FolderSpec(path=path, classes=classes, encoding=encoding)
    if "ignore_index" in data:
        spec.ignore_index = _int(path, "ignore_index", data["ignore_index"], 0, 65535)
        if spec.ignore_index < count:
            raise _fail(path, "ignore_index", f"{spec.ignore_index} is a class index (0..{count - 1})")
    if encoding == "ids":
        table = data.get("id_to_train")
        if not isinstance(table, dict) or not table:
            raise _fail(path, "id_to_train", "missing or empty: label_encoding ids needs a mapping {id: class index}")
        for native, train in table.items():
            _int(path, "id_to_train", native, 0, 65535)
            if train != IGNORE and train != spec.ignore_index:
                _int(path, f"id_to_train[{native}]", train, 0, count - 1)
            spec.id_to_train[int(native)] = IGNORE if train == spec.ignore_index else int(train)
    elif "id_to_train" in data:
        raise _fail(path, "id_to_train", f"only used with label_encoding ids (this file says {encoding})")
    if "unknown_colour" in data:
        if data["unknown_colour"] not in ("error", "ignore"):
            raise _fail(path, "unknown_colour", f"{data['unknown_colour']!r} is not error or ignore")
        spec.unknown_colour = data["unknown_colour"]
    if "ignore_colours" in data:
        raw = data["ignore_colours"]
        if not isinstance(raw, list):
            raise _fail(path, "ignore_colours", f"{raw!r} is not a list of [r, g, b] colours")
        spec.ignore_colours = tuple(_colour(path, f"ignore_colours[{i}]", c) for i, c in enumerate(raw))
        clash = set(spec.ignore_colours) & set(palette)
        if clash:
            raise _fail(path, "ignore_colours", f"{list(sorted(clash)[0])} is also a class colour")
    for key in ("images", "labels"):
        if key in data:
            if not isinstance(data[key], str) or not data[key]:
                raise _fail(path, key, f"{data[key]!r} is not a folder name")
            setattr(spec, key, data[key])
    if "image_suffix" in data:
        spec.image_suffixes = _suffixes(path, "image_suffix", data["image_suffix"])
    if "label_suffix" in data:
        if not isinstance(data["label_suffix"], str) or not data["label_suffix"]:
            raise _fail(path, "label_suffix", f"{data['label_suffix']!r} is not a file-name ending such as .png")
        spec.label_suffix = data["label_suffix"]
    if "splits" in data:
        raw = data["splits"]
        if not isinstance(raw, dict) or not raw or not all(isinstance(v, str) for v in raw.values()):
            raise _fail(path, "splits", f"{raw!r} is not a mapping such as {{train: train.txt, val: val.txt}}")
        spec.splits = {str(k): v for k, v in raw.items()}
        for name, listing in spec.splits.items():
            if not (spec.root / listing).is_file():
                raise _fail(path, f"splits.{name}", f"list file {spec.root / listing} not found")
    if "eval_height" in data and data["eval_height"] is not None:
        spec.eval_height = _int(path, "eval_height", data["eval_height"], 8, 1 << 16)
    return spec
