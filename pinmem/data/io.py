"""Reading images and label maps from disk, with errors that name the file.

Images are decoded with OpenCV and returned as RGB ``uint8``; grayscale, RGBA and 16-bit images are converted.
Single-channel label maps are read with Pillow so that palette PNGs give their *indices* (GTAV's labels are
palette images whose index is the Cityscapes labelId), not their colours.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from pinmem.errors import CorruptFileError

cv2.setNumThreads(1)  # data loading parallelises over worker processes, not inside OpenCV


def to_rgb_uint8(array: np.ndarray, *, bgr: bool = True) -> np.ndarray:
    """Convert a decoded image of any common kind (gray, gray+alpha, RGB(A)/BGR(A), 8 or 16 bit) to RGB uint8."""
    if array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    elif array.dtype in (np.float32, np.float64):
        array = np.clip(array * 255.0 if array.max() <= 1.0 else array, 0, 255).astype(np.uint8)
    elif array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    if array.ndim == 2:
        return np.ascontiguousarray(np.repeat(array[:, :, None], 3, axis=2))
    channels = array.shape[2]
    if channels == 1:
        return np.ascontiguousarray(np.repeat(array, 3, axis=2))
    if channels == 2:  # gray + alpha
        return np.ascontiguousarray(np.repeat(array[:, :, :1], 3, axis=2))
    array = array[:, :, :3]
    if bgr:
        array = array[:, :, ::-1]
    return np.ascontiguousarray(array)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as H×W×3 RGB ``uint8``. Raises :class:`CorruptFileError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CorruptFileError(f"image file not found: {path}")
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise CorruptFileError(f"cannot decode image {path} (truncated or not an image file)")
    return to_rgb_uint8(image)


def read_label_indices(path: str | Path) -> np.ndarray:
    """Read a single-channel label PNG (grayscale, 16-bit or palette) as its raw integer values, H×W.

    Palette images give their indices. An RGB label file is returned as H×W×3 for the caller to decode.
    """
    path = Path(path)
    if not path.is_file():
        raise CorruptFileError(f"label file not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("P", "L", "I", "I;16", "I;16B", "I;16L", "1"):
                return np.asarray(im).astype(np.int64 if im.mode.startswith("I") else np.uint8)
            if im.mode in ("RGB", "RGBA", "LA"):
                arr = np.asarray(im.convert("RGB"))
                return arr
            raise CorruptFileError(f"label file {path} has unsupported image mode {im.mode!r}")
    except CorruptFileError:
        raise
    except Exception as err:  # Pillow raises many different types for bad files
        raise CorruptFileError(f"cannot decode label {path}: {err}") from err


def read_unchanged(path: str | Path) -> np.ndarray:
    """Read an image file with OpenCV exactly as stored (bit depth and channel count kept, BGR order)."""
    path = Path(path)
    if not path.is_file():
        raise CorruptFileError(f"file not found: {path}")
    data = np.fromfile(str(path), dtype=np.uint8)
    array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if array is None:
        raise CorruptFileError(f"cannot decode {path} (truncated or not an image file)")
    return array


def write_png(path: str | Path, array: np.ndarray) -> None:
    """Write an array as PNG with OpenCV (BGR order for 3-channel arrays, 8 or 16 bit), creating parent dirs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", array)
    if not ok:
        raise CorruptFileError(f"cannot encode PNG for {path}")
    buf.tofile(str(path))
