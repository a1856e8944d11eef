"""A contact sheet: a few scenes of each style beside their colourised label maps, for a quick look."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from pinmem.data.labels import colorize
from pinmem.synth.scene import render_scene
from pinmem.synth.style import Style
from pinmem.synth.style_io import load_style


def contact_sheet(styles: Iterable[str | Path | Style], seed: int = 0, size: tuple[int, int] = (384, 192),
                  per_style: int = 2, start: int = 0) -> np.ndarray:
    """One row per style: ``per_style`` (image, labels) pairs, every tile resized to ``size``. RGB uint8."""
    rows = []
    for style in styles:
        style = load_style(style)
        tiles = []
        for index in range(start, start + per_style):
            scene = render_scene(style, seed, index, size)
            tiles.append(cv2.resize(scene.image, size, interpolation=cv2.INTER_AREA))
            tiles.append(cv2.resize(colorize(scene.label), size, interpolation=cv2.INTER_NEAREST))
        row = np.concatenate(tiles, axis=1)
        cv2.putText(row, style.name, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 2, cv2.LINE_AA)
        rows.append(row)
    return np.concatenate(rows, axis=0)


def save_contact_sheet(path: str | Path, styles: Iterable[str | Path | Style], **options) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), contact_sheet(styles, **options)[:, :, ::-1])
    return path
