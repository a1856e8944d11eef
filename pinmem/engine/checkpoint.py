"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint is a plain dict of tensors and Python primitives, so it can never run code when loaded:

``format``       ``"pinmem-checkpoint"``; ``version`` 1
``config``       the resolved training configuration (:func:`pinmem.engine.config.to_dict`)
``model``        the model's ``state_dict`` (the memory M is the buffer ``memory.slots``)
``iteration``    iterations completed
``optimizer``, ``scheduler``, ``scaler``, ``rng``, ``method``  training state for an exact resume (optional)

A file is written to ``NAME.tmp`` in the same folder, flushed to disk and renamed over ``NAME``, so an
interruption never leaves a half-written checkpoint in place of a good one.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from pinmem.engine.config import Config, from_dict, model_kwargs
from pinmem.errors import PinmemError
from pinmem.models import build_model

FORMAT = "pinmem-checkpoint"
VERSION = 1


class CheckpointError(PinmemError):
    """A checkpoint cannot be read, is not a pinmem checkpoint, or does not fit the model."""


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Atomically write ``payload`` (plus the format tag) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        torch.save({"format": FORMAT, "version": VERSION, **payload}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
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
    if data.get("version", 0) > VERSION:
        raise CheckpointError(f"{path} has checkpoint version {data['version']}; this pinmem reads up to {VERSION}")
    for key in ("config", "model"):
        if key not in data:
            raise CheckpointError(f"{path} lacks the {key!r} entry")
    return data


def checkpoint_config(data: dict[str, Any]) -> Config:
    return from_dict(data["config"])


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[torch.nn.Module, Config]:
    """Model (eval mode, weights and memory restored) and its configuration from a checkpoint file."""
    data = load_checkpoint(path, map_location)
    try:
        config = checkpoint_config(data)
    except Exception as err:
        raise CheckpointError(f"{path}: its configuration cannot be read: {err}") from err
    model = build_model(**model_kwargs(config, load_backbone=False))
    try:
        model.load_state_dict(data["model"], strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit the {config.model.arch}/{config.model.backbone} model "
                              f"its configuration describes: {str(err).splitlines()[0]}") from err
    return model.to(map_location).eval(), config
