"""The `pinmem` command line.

Every sub-command lives in :mod:`pinmem.commands` (one module per command family, each with
``register(subparsers)``); this module builds the parser from them and dispatches. User mistakes raise
:class:`pinmem.errors.PinmemError`, which :func:`main` prints as one clear message with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pinmem import __version__
from pinmem.commands import COMMANDS
from pinmem.errors import PinmemError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pinmem", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"pinmem {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except PinmemError as err:
        print(f"pinmem: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pinmem: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
