"""Argument types and option groups shared by several sub-commands."""

from __future__ import annotations

import argparse
import dataclasses

from pinmem.evaluation.inference import InferenceSettings


def positive_int(text: str) -> int:
    """An ``argparse`` type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from err
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_inference_options(parser: argparse.ArgumentParser) -> None:
    """One option per field of :class:`~pinmem.evaluation.inference.InferenceSettings` (``--mode``, ``--flip``,
    ``--crop``, ``--stride``, ``--pad``, ``--batch-size``, ``--target-bn``, ``--amp``, ``--device``; defaults
    and help from the dataclass), and ``--quiet``. :func:`inference_settings` reads them back."""
    for spec in dataclasses.fields(InferenceSettings):
        flag = "--" + spec.name.replace("_", "-")
        meta = spec.metadata
        default = meta.get("cli_default", spec.default)
        if isinstance(spec.default, bool):
            parser.add_argument(flag, action="store_true", help=meta["help"])
        elif isinstance(spec.default, int):
            parser.add_argument(flag, type=positive_int, default=default, help=meta["help"])
        else:
            parser.add_argument(flag, choices=meta.get("choices"), default=default, help=meta["help"])
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def inference_settings(args: argparse.Namespace) -> InferenceSettings:
    """The :class:`~pinmem.evaluation.inference.InferenceSettings` of options added by
    :func:`add_inference_options`."""
    return InferenceSettings(**{name: getattr(args, name) for name in InferenceSettings.field_names()})
