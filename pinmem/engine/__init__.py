"""Training machinery, in two layers (see ``tests/test_layers.py``).

Below :mod:`pinmem.methods`: :mod:`~pinmem.engine.config` (the typed configuration) and
:mod:`~pinmem.engine.distributed` (:class:`~pinmem.engine.distributed.DistContext`), which the methods use.
Above it: :mod:`~pinmem.engine.checkpoint`, :mod:`~pinmem.engine.logging` and :mod:`~pinmem.engine.trainer`,
which use the methods. This file imports nothing, so importing the lower modules never runs the upper ones.
"""
