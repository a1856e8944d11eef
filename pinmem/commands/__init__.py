"""The ``pinmem`` sub-commands: one module per command family, each with ``register(subparsers)``.

A command module only turns parsed arguments into calls of the library (``pinmem.data``, ``pinmem.training``,
``pinmem.evaluation``, ``pinmem.segmenter``, ``pinmem.predict``, ``pinmem.export``, ``pinmem.synth``,
``pinmem.demo``), words what it prints, and returns the exit code; :mod:`pinmem.cli` builds the parser from
:data:`COMMANDS` and dispatches. Heavy imports stay inside the ``cmd_*`` functions, so building the parser is
cheap.
"""

from __future__ import annotations

from pinmem.commands import data, demo, evaluate, export, predict, report, synth, train

#: in the order ``pinmem --help`` lists them
COMMANDS = (train, demo, evaluate, predict, export, report, synth, data)

__all__ = ["COMMANDS"]
