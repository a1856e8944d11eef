"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint is a plain dict of tensors and Python primitives, so it can never run code when loaded:

``format``       ``"pinmem-checkpoint"``; ``version`` 1
``config``       the resolved training configuration (:func:`pinmem.engine.config.to_dict`)
``model``        the model's ``state_dict`` (the memory M is the buffer ``memory.slots``)
``iteration``    iterations completed
``optimizer``, ``scheduler``, ``scaler``, ``rng``, ``method``  training state for an exact resume (optional)
``skipped_samples``  training samples replaced so far under ``data.on_bad_sample=skip`` (optional)

Reading: :func:`load_model` (a model to predict with: model, configuration, iteration) and :func:`open_resume` (a
run to continue: configuration, training state, its model checked) each open the file once.

A file is written to ``NAME.tmp`` in the same folder, flushed to disk and renamed over ``NAME``, so an
interruption never leaves a half-written checkpoint in place of a good one; a failed write removes the
``.tmp`` and raises :class:`CheckpointWriteError` (the previous ``NAME`` stays as it was).
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pinmem.engine.config import Config, from_dict, load_config, model_kwargs
from pinmem.errors import PinmemError
from pinmem.models import build_model

FORMAT = "pinmem-checkpoint"
VERSION = 1


class CheckpointError(PinmemError):
    """A checkpoint cannot be read, is not a pinmem checkpoint, or does not fit the model."""


class CheckpointWriteError(CheckpointError):
    """A checkpoint could not be written (disk full, no permission, an error inside ``torch.save``); the file
    that was at the path before is unchanged and no temporary file is left."""


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Atomically write ``payload`` (plus the format tag) to ``path``; a failure is a :class:`CheckpointWriteError`
    naming the path and the cause, and leaves the previous file and no ``.tmp`` behind."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            torch.save({"format": FORMAT, "version": VERSION, **payload}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:  # a second Ctrl-C mid-write too: no half-written .tmp stays behind
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if not isinstance(err, Exception):
            raise
        kept = f"the previous {path.name} is unchanged" if path.is_file() else "no checkpoint was written"
        raise CheckpointWriteError(f"cannot write checkpoint {path}: {type(err).__name__}: {err}; {kept}") from err
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a pinmem checkpoint safely; every failure is a :class:`CheckpointError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"refusing {path}: it holds Python objects that only a full unpickle could build (which can run "
            "arbitrary code); pinmem checkpoints hold tensors and plain values only"
        ) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise CheckpointError(f"cannot read checkpoint {path}: truncated or not a PyTorch file ({err})") from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a pinmem checkpoint (no '{FORMAT}' format tag)")
    version = data.get("version", 0)
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(newer_version_message(path, version))
    for key in ("config", "model"):
        if key not in data:
            raise CheckpointError(f"{path} lacks the {key!r} entry")
    if isinstance(data["model"], dict):
        data["model"] = renamed_model_keys(data["model"])
    return data


#: state-dict key prefixes renamed since checkpoints were first written (old → new): the memory's update network
#: U was the attribute ``update`` until the names of docs/method.md ("Names") gave it one meaning
RENAMED_PREFIXES = {"memory.update.": "memory.update_net."}


def renamed_model_keys(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` with the keys of older checkpoints renamed (:data:`RENAMED_PREFIXES`), in the same order."""
    def new_name(key: str) -> str:
        for old, new in RENAMED_PREFIXES.items():
            if key.startswith(old):
                return new + key[len(old):]
        return key

    return {new_name(k): v for k, v in state.items()}


def checkpoint_config(data: dict[str, Any]) -> Config:
    return from_dict(data["config"])


def read_config(data: dict[str, Any], path: str | Path) -> Config:
    """The configuration stored in checkpoint ``data`` (read from ``path``); a :class:`CheckpointError` if it
    cannot be read."""
    try:
        return checkpoint_config(data)
    except Exception as err:
        raise CheckpointError(f"{path}: its configuration cannot be read: {err}") from err


def load_weights(model: torch.nn.Module, data: dict[str, Any], path: str | Path, config: Config) -> None:
    """The checkpoint's weights (and memory) into ``model``, built from ``config``; weights that do not fit are a
    :class:`CheckpointError` saying how (:func:`weights_mismatch_message`)."""
    try:
        model.load_state_dict(data["model"], strict=True)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise CheckpointError(weights_mismatch_message(path, config, data["model"])) from err


@dataclass
class LoadedModel:
    """What :func:`load_model` reads from a checkpoint: the model (eval mode, weights and memory restored), its
    training configuration and the iterations it was trained for (None when the file does not say)."""

    model: torch.nn.Module
    config: Config
    iteration: int | None


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> LoadedModel:
    """The model, its configuration and its iteration from a checkpoint file, opened once."""
    data = load_checkpoint(path, map_location)
    config = read_config(data, path)
    model = build_model(**model_kwargs(config, load_backbone=False))
    load_weights(model, data, path, config)
    iteration = data.get("iteration")
    return LoadedModel(model.to(map_location).eval(), config, None if iteration is None else int(iteration))


@dataclass
class Resume:
    """A run to continue (:func:`open_resume`): the checkpoint file, the run's configuration (the checkpoint's with
    the command's overrides) and the checkpoint's contents (weights and training state)."""

    path: Path
    config: Config
    checkpoint: dict[str, Any]

    @property
    def iteration(self) -> int:
        return int(self.checkpoint["iteration"])


def open_resume(config_file: str | Path | None, overrides: list[str], resume: str | Path | None) -> Resume:
    """For ``--resume [PATH]``: the checkpoint (``OUT/checkpoints/last.pt`` when no path is given, ``OUT`` from the
    config file and overrides), opened once, and the run's configuration — the checkpoint's, with this command's
    overrides on top (e.g. a larger ``train.iterations``). Refused, before anything is written, when that
    configuration builds a model the checkpoint's weights do not fit (:func:`check_resume`)."""
    if resume:
        path = Path(resume)
    else:  # only out_dir is read from the config file: the run's configuration is the checkpoint's
        path = Path(load_config(config_file, overrides).train.out_dir) / "checkpoints" / "last.pt"
    if not path.is_file():
        raise PinmemError(f"no checkpoint to resume at {path}")
    checkpoint = load_checkpoint(path)
    config = load_config(None, overrides, base=checkpoint["config"])
    check_resume(config, checkpoint, path)
    return Resume(path, config, checkpoint)


def newer_version_message(path: str | Path, version: object) -> str:
    """What to tell a user whose checkpoint has a format version this pinmem does not read."""
    return (f"{path} is a pinmem checkpoint of format version {version!r}, written by a newer pinmem; this pinmem "
            f"reads format versions up to {VERSION}: upgrade pinmem to read it")


MODEL_KEYS = {"arch": "model.arch", "backbone": "model.backbone", "norm": "model.norm",
              "num_classes": "model.num_classes", "memory": "model.memory"}


def _shapes(state: Any) -> dict[str, tuple[int, ...]]:
    items = state.items() if hasattr(state, "items") else []
    return {str(k): tuple(v.shape) for k, v in items if isinstance(v, torch.Tensor)}


@functools.lru_cache(maxsize=64)
def _signature(arch: str, backbone: str, norm: str, memory: bool, num_classes: int) -> dict[str, tuple[int, ...]]:
    """Parameter and buffer shapes of a model, built on the meta device (nothing allocated or initialised)."""
    with torch.device("meta"):
        model = build_model(arch, backbone, num_classes=num_classes, memory=memory, norm=norm)
    return _shapes(model.state_dict())


def identify_weights(state: Any) -> list[dict[str, Any]]:
    """Every (arch, backbone, norm, num_classes, memory) whose model has exactly the shapes of ``state``: more
    than one where the weights cannot tell them apart, none for weights of no model pinmem builds."""
    from pinmem.models.factory import ARCHS, BACKBONES
    from pinmem.models.norms import NORM_KINDS

    shapes = _shapes(state)
    classifier = shapes.get("classifier.weight")
    if not classifier:
        return []
    memory, num_classes = "memory.slots" in shapes, classifier[0]
    return [{"arch": a, "backbone": b, "norm": n, "num_classes": num_classes, "memory": memory}
            for a in ARCHS for b in BACKBONES for n in NORM_KINDS
            if _signature(a, b, n, memory, num_classes) == shapes]


def _key_summary(expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]]) -> str:
    missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    shape = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
    parts = [f"{len(missing)} missing (e.g. {missing[0]})" if missing else "",
             f"{len(extra)} unexpected (e.g. {extra[0]})" if extra else "",
             f"{len(shape)} with another shape (e.g. {shape[0]}: {list(expected[shape[0]])} expected, "
             f"{list(found[shape[0]])} found)" if shape else ""]
    return "weight keys: " + ", ".join(p for p in parts if p)


def weights_mismatch_message(path: str | Path, config: Config, state: Any) -> str:
    """One line saying how the weights in checkpoint ``path`` differ from the model its ``config`` describes:
    the architecture, backbone, normalisation, class count or memory, then the weight keys at fault."""
    wanted = model_kwargs(config, load_backbone=False)
    wanted["norm"] = config.norm
    expected = _signature(wanted["arch"], wanted["backbone"], wanted["norm"], wanted["memory"],
                          wanted["num_classes"])
    summary = _key_summary(expected, _shapes(state))
    matches = identify_weights(state)
    if not matches:
        return (f"{path}: its weights are not those of any model pinmem builds, and do not fit the "
                f"{config.model.arch}/{config.model.backbone} model its configuration describes ({summary})")
    differences = []
    for field, key in MODEL_KEYS.items():
        seen = sorted({str(m[field]) for m in matches})
        if str(wanted[field]) not in seen:
            differences.append(f"{key} is {wanted[field]} in its configuration but {' or '.join(seen)} in its weights")
    return (f"{path}: its weights do not fit the model its configuration describes: {'; '.join(differences)} "
            f"({summary})")


def check_resume(config: Config, checkpoint: dict[str, Any], path: str | Path) -> None:
    """Refuse to resume when this run's configuration (the checkpoint's with the command's overrides) builds a
    model that the checkpoint's weights do not fit; the message lists the ``model.*`` settings that differ."""
    wanted = {**model_kwargs(config, load_backbone=False), "norm": config.norm}
    if _signature(wanted["arch"], wanted["backbone"], wanted["norm"], wanted["memory"],
                  wanted["num_classes"]) == _shapes(checkpoint.get("model")):
        return
    try:
        saved = checkpoint_config(checkpoint)
        before = {**model_kwargs(saved, load_backbone=False), "norm": saved.norm}
    except Exception as err:  # an unreadable configuration: describe the weights instead
        message = weights_mismatch_message(path, config, checkpoint.get("model"))
        raise CheckpointError(f"cannot resume from {message}") from err
    differences = [f"{key}={wanted[field]} (the checkpoint has {before[field]})" for field, key in MODEL_KEYS.items()
                   if wanted[field] != before[field]]
    raise CheckpointError(
        f"cannot resume from {path}: this run asks for {', '.join(differences) or 'another model'}; resume without "
        "the overrides that change the model, or start a new run in another train.out_dir")
