"""Reading images and label maps from disk, with errors that name the file.

Images are decoded with OpenCV and returned as RGB ``uint8``; grayscale, RGBA, 16-bit and CMYK images are
converted. Single-channel label maps are read with Pillow so that palette PNGs give their *indices* (GTAV's labels
are palette images whose index is the Cityscapes labelId), not their colours.

Before OpenCV decodes a file its header is read (Pillow, no pixels decoded): an image larger than
``max_pixels`` (at most :data:`MAX_DECODE_PIXELS`) is refused with :class:`ImageTooLargeError`, so that a huge
photo or a corrupt header cannot make the reader allocate gigabytes. ``orient=True`` applies the EXIF orientation
(photos from phones and cameras), which OpenCV's unchanged decoding ignores.
"""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from pinmem.errors import CorruptFileError

cv2.setNumThreads(1)  # data loading parallelises over worker processes, not inside OpenCV

#: no image above this many pixels is decoded (Pillow refuses files above twice its ``MAX_IMAGE_PIXELS`` anyway)
MAX_DECODE_PIXELS = 1 << 28
EXIF_ORIENTATION = 0x0112


class ImageTooLargeError(CorruptFileError):
    """An image has more pixels than the reader is allowed to decode (the message gives its size and the limit)."""


def _too_large(path: Path, width: int | None, height: int | None, limit: int, pixels: int | None = None
               ) -> ImageTooLargeError:
    if width and height:
        size = f"{width}×{height} ({width * height / 1e6:.1f} megapixels)"
    else:
        size = f"{pixels / 1e6:.1f} megapixels" if pixels else f"more than {2 * (Image.MAX_IMAGE_PIXELS or 0)} pixels"
    hint = ("shrink it or raise the limit (pinmem predict --max-pixels)" if limit < MAX_DECODE_PIXELS else
            "pinmem decodes no image this large (a corrupt header?)")
    return ImageTooLargeError(f"image {path} is {size}, above the limit of {limit / 1e6:.1f} megapixels; {hint}")


def _probe(data: np.ndarray, path: Path, limit: int, orient: bool) -> int:
    """Check the header's size against ``limit`` without decoding the pixels; the EXIF orientation (1 = as stored,
    also when Pillow cannot parse the header: OpenCV decides then)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data.tobytes())) as im:
                width, height = im.size
                if width * height > limit:
                    raise _too_large(path, width, height, limit)
                if not orient:
                    return 1
                if im.format == "PNG":  # Pillow's PNG getexif() decodes the image; the eXIf chunk is enough
                    exif = Image.Exif()
                    if "exif" in im.info:
                        exif.load(im.info["exif"])
                else:
                    exif = im.getexif()
                value = exif.get(EXIF_ORIENTATION, 1)
                return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1
    except Image.DecompressionBombError as err:  # above Pillow's limit; its message gives the pixel count
        found = re.search(r"\((\d+) pixels\)", str(err))
        raise _too_large(path, None, None, limit, int(found.group(1)) if found else None) from err
    except ImageTooLargeError:
        raise
    except Exception:  # not a format Pillow reads, or a damaged header: OpenCV decides
        return 1


def apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Turn an H×W(×C) array stored with EXIF ``orientation`` (1..8) upright, as image viewers show it."""
    if orientation in (5, 6, 7, 8):
        array = np.swapaxes(array, 0, 1)  # transpose; then flips give the four rotated cases
    flips = {2: (False, True), 3: (True, True), 4: (True, False), 6: (False, True), 7: (True, True),
             8: (True, False)}
    vertical, horizontal = flips.get(orientation, (False, False))
    if vertical:
        array = array[::-1]
    if horizontal:
        array = array[:, ::-1]
    return np.ascontiguousarray(array)


def _decode(path: Path, max_pixels: int | None, orient: bool, what: str) -> np.ndarray:
    """OpenCV's unchanged decoding of ``path`` after the header checks; :class:`CorruptFileError` naming it."""
    if not path.is_file():
        raise CorruptFileError(f"{what} file not found: {path}")
    limit = MAX_DECODE_PIXELS if not max_pixels else min(int(max_pixels), MAX_DECODE_PIXELS)
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as err:
        raise CorruptFileError(f"cannot read {what} {path}: {err}") from err
    orientation = _probe(data, path, limit, orient) if data.size else 1
    try:
        array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    except cv2.error as err:
        raise CorruptFileError(f"cannot decode {what} {path}: {str(err).strip().splitlines()[-1]}") from err
    if array is None or array.size == 0:
        raise CorruptFileError(f"cannot decode {what} {path} (truncated or not an image file)")
    if array.shape[0] * array.shape[1] > limit:  # a format Pillow cannot read: checked after decoding
        raise _too_large(path, array.shape[1], array.shape[0], limit)
    return apply_orientation(array, orientation) if orientation != 1 else array


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


def read_image(path: str | Path, orient: bool = False, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file as H×W×3 RGB ``uint8``. Raises :class:`CorruptFileError` naming the file.

    ``orient``: apply the file's EXIF orientation (photos; dataset images are read as stored, like their labels).
    ``max_pixels``: refuse larger images (:class:`ImageTooLargeError`); None or 0: :data:`MAX_DECODE_PIXELS`.
    """
    return to_rgb_uint8(_decode(Path(path), max_pixels, orient, "image"))


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
    return _decode(Path(path), None, False, "image")


def write_png(path: str | Path, array: np.ndarray) -> None:
    """Write an array as PNG with OpenCV (BGR order for 3-channel arrays, 8 or 16 bit), creating parent dirs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", array)
    if not ok:
        raise CorruptFileError(f"cannot encode PNG for {path}")
    buf.tofile(str(path))
