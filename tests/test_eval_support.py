"""Helpers shared by the evaluation / prediction / export / report tests (no tests here)."""

from __future__ import annotations

import argparse
import contextlib
import io
from pathlib import Path

import torch


def make_checkpoint(path: Path, backbone: str = "resnet18", method: str = "pinmem", seed: int = 0,
                    overrides: tuple[str, ...] = ()) -> Path:
    """A small random-weight checkpoint; the memory holds random unit vectors (not the zero init)."""
    from pinmem.engine.checkpoint import build_model_from_config, save_checkpoint
    from pinmem.engine.config import load_config, to_dict

    cfg = load_config(None, [f"model.backbone={backbone}", f"method={method}", *overrides])
    torch.manual_seed(seed)
    model = build_model_from_config(cfg)
    if model.memory is not None:
        model.memory.slots.copy_(torch.nn.functional.normalize(torch.randn_like(model.memory.slots), dim=1))
    save_checkpoint(path, {"config": to_dict(cfg), "model": model.state_dict(), "iteration": 7})
    return path


def _wired() -> bool:
    from pinmem import cli

    parser = cli.build_parser()
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return bool(subs) and "eval" in subs[0].choices


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """Run ``pinmem ARGV`` in-process: exit code, stdout, stderr.

    Uses ``pinmem.cli.main`` once the evaluation commands are wired into it; until then an equivalent parser
    built with :func:`pinmem.evaluation.commands.register` and the same error handling as ``cli.main``.
    """
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        if _wired():
            from pinmem.cli import main

            code = main(argv)
        else:
            from pinmem.errors import PinmemError
            from pinmem.evaluation.commands import register

            parser = argparse.ArgumentParser(prog="pinmem")
            register(parser.add_subparsers(dest="command", required=True))
            args = parser.parse_args(argv)
            try:
                code = int(args.func(args) or 0)
            except PinmemError as exc:
                print(f"pinmem: error: {exc}", file=err)
                code = 2
    return code, out.getvalue(), err.getvalue()
