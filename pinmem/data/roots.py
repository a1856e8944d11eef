""""Did you mean" for dataset roots that point one level too high or too low.

Each loader names the paths that mark its root (:attr:`SegmentationDataset.root_markers`: alternatives, each a
tuple of paths relative to the root that all exist). When a root fails to load and does not carry a marker
itself, :func:`root_hint` looks one level down (``/data`` given for ``/data/gtav``) and up to two levels up
(``/data/gtav/images`` or ``/data/cityscapes/leftImg8bit/val`` given for the dataset's root) for a folder that
does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

#: sub-folders looked at below a root (a folder of images has thousands of files: the scan stops here)
MAX_ENTRIES = 2000


def looks_like(root: Path, markers: Sequence[Sequence[str]]) -> bool:
    """True if every path of one of the ``markers`` alternatives exists under ``root``."""
    return any(all((root / part).exists() for part in alternative) for alternative in markers)


def _children(root: Path) -> list[Path]:
    folders: list[Path] = []
    try:
        with os.scandir(root) as entries:
            for count, entry in enumerate(entries):
                if count >= MAX_ENTRIES:
                    break
                if entry.is_dir():
                    folders.append(Path(entry.path))
    except OSError:
        return []
    return sorted(folders)


def root_hint(name: str, root: Path, markers: Sequence[Sequence[str]]) -> str | None:
    """A "did you mean" sentence for dataset ``name`` whose ``root`` failed to load, or None when ``root`` looks
    right (the problem is elsewhere) or no folder nearby looks like the dataset's root."""
    if not markers or not root.is_dir() or looks_like(root, markers):
        return None
    below = [c for c in _children(root) if looks_like(c, markers)]
    if below:
        below.sort(key=lambda c: (name not in c.name.lower(), c.name))
        others = f" (or {', '.join(str(c) for c in below[1:3])})" if len(below) > 1 else ""
        return f"{root} looks one level too high for {name}: did you mean {below[0]}{others}?"
    for levels, parent in enumerate(list(Path(os.path.abspath(root)).parents)[:2], start=1):
        if looks_like(parent, markers):
            too_low = "one level" if levels == 1 else f"{levels} levels"
            return f"{root} looks {too_low} too low for {name}: did you mean {parent}?"
    return None
