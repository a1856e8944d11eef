"""Training (above :mod:`pinmem.methods`; ``tests/test_layers.py``): the loop, its files and its faults.

:mod:`~pinmem.training.trainer` (one loop for every method, exact resume), :mod:`~pinmem.training.checkpoint`
(written atomically, read weights-only; :func:`~pinmem.training.checkpoint.load_model`),
:mod:`~pinmem.training.faults` (stop signals, bad samples, divergence), :mod:`~pinmem.training.hot_path` (the
per-iteration work kept free of host-device synchronisation), :mod:`~pinmem.training.logging` and
:mod:`~pinmem.training.rng`. This file imports nothing, so importing a module here runs only what it needs.
"""
