"""The procedural multi-domain street world (``pinmem synth``).

Scenes are drawn from (style, seed, index): :mod:`~pinmem.synth.layout` decides what is where (shared by every
style), :mod:`~pinmem.synth.render` and :mod:`~pinmem.synth.effects` decide how it looks (the style's business),
and :mod:`~pinmem.synth.world` writes whole domains in the datasets' native formats. The names below are
imported lazily, so that importing the package (e.g. for :mod:`pinmem.commands.synth`) stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Scene": "pinmem.synth.scene",
    "render_scene": "pinmem.synth.scene",
    "Style": "pinmem.synth.style",
    "load_style": "pinmem.synth.style_io",
    "shipped_styles": "pinmem.synth.style_io",
    "generate_world": "pinmem.synth.world",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pinmem.synth' has no attribute {name!r}")
