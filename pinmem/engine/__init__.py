"""What a training method is configured with and runs in (below :mod:`pinmem.methods`; ``tests/test_layers.py``).

:mod:`~pinmem.engine.config` (the typed configuration, with its value checks in
:mod:`~pinmem.engine.config_checks`) and :mod:`~pinmem.engine.distributed`
(:class:`~pinmem.engine.distributed.DistContext`). The training loop, its checkpoints and its faults, which use the
methods, are :mod:`pinmem.training`. This file imports nothing.
"""
