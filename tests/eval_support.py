"""Helpers shared by the evaluation / prediction / export / report tests (no tests here)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import torch


def make_checkpoint(path: Path, backbone: str = "resnet18", method: str = "pinmem", seed: int = 0,
                    overrides: tuple[str, ...] = (), num_classes: int | None = None) -> Path:
    """A small random-weight checkpoint; the memory holds random unit vectors (not the zero init).
    ``num_classes``: a model of that many classes, whatever the configured data's class set."""
    from pinmem.engine.config import load_config, model_kwargs, to_dict
    from pinmem.models import build_model
    from pinmem.training.checkpoint import save_checkpoint

    cfg = load_config(None, [f"model.backbone={backbone}", f"method={method}", *overrides])
    if num_classes is not None:
        cfg.model.num_classes = num_classes
    torch.manual_seed(seed)
    model = build_model(**model_kwargs(cfg))
    if model.memory is not None:
        model.memory.slots.copy_(torch.nn.functional.normalize(torch.randn_like(model.memory.slots), dim=1))
    save_checkpoint(path, {"config": to_dict(cfg), "model": model.state_dict(), "iteration": 7})
    return path


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """Run ``pinmem ARGV`` in-process through :func:`pinmem.cli.main`: exit code, stdout, stderr."""
    from pinmem.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()
