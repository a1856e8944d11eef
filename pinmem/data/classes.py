"""Class sets: the names and colours of a dataset's classes, in label order (docs/own-data.md).

Every built-in dataset has the 19 Cityscapes train classes (:data:`CITYSCAPES`); a folder dataset declares its own
in ``dataset.yaml``. All sources and targets of a run share one class set (:func:`common_class_set`), and the
model, the memory (one slot per class), evaluation tables, ``predict``'s colours and the exported model follow it.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pinmem.data.labels import CLASSES, IGNORE, PALETTE
from pinmem.errors import ConfigError

#: the most classes a label map can hold: trainIds are uint8 and 255 is ignore
MAX_CLASSES = 255

Colour = tuple[int, int, int]


@dataclass(frozen=True)
class ClassSet:
    """Class names in label order and one RGB colour per class."""

    names: tuple[str, ...]
    palette: tuple[Colour, ...]

    def __post_init__(self) -> None:
        if len(self.palette) != len(self.names):
            raise ValueError(f"{len(self.names)} class names but {len(self.palette)} colours")

    def __len__(self) -> int:
        return len(self.names)

    @property
    def is_cityscapes(self) -> bool:
        return self.names == CLASSES

    def describe(self, limit: int = 8) -> str:
        """``"7 classes (flat, construction, ...)"`` or ``"the 19 Cityscapes classes"``."""
        if self.is_cityscapes:
            return "the 19 Cityscapes classes"
        shown = ", ".join(self.names[:limit]) + (", ..." if len(self.names) > limit else "")
        return f"{len(self.names)} classes ({shown})"

    def colour_table(self) -> np.ndarray:
        """256×3 uint8: the class colours, black for ignore and any id past the last class."""
        table = np.zeros((256, 3), dtype=np.uint8)
        table[: len(self.palette)] = np.asarray(self.palette, dtype=np.uint8).reshape(-1, 3)
        return table

    def colorize(self, train_ids: np.ndarray) -> np.ndarray:
        """H×W class indices -> H×W×3 RGB in this set's colours (ignore: black)."""
        return self.colour_table()[train_ids]


def generated_palette(count: int) -> tuple[Colour, ...]:
    """``count`` distinct, saturated colours (golden-ratio hues, alternating brightness); deterministic."""
    colours = []
    for i in range(count):
        hue = (i * 0.618033988749895) % 1.0
        value = 0.95 if i % 2 == 0 else 0.7
        r, g, b = colorsys.hsv_to_rgb(hue, 0.75, value)
        colours.append((round(255 * r), round(255 * g), round(255 * b)))
    return tuple(colours)


CITYSCAPES = ClassSet(CLASSES, tuple(tuple(int(v) for v in row) for row in PALETTE))  # type: ignore[misc]

#: the seven Cityscapes categories (void left out) and the trainIds each one gathers
CATEGORY_NAMES = ("flat", "construction", "object", "nature", "sky", "human", "vehicle")
CATEGORY_OF_TRAIN_ID = (0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4, 5, 5, 6, 6, 6, 6, 6, 6)
CATEGORIES = ClassSet(CATEGORY_NAMES, ((128, 64, 128), (70, 70, 70), (153, 153, 153), (107, 142, 35),
                                       (70, 130, 180), (220, 20, 60), (0, 0, 142)))


def train_ids_to_categories(train_ids: np.ndarray) -> np.ndarray:
    """Cityscapes trainIds (255 = ignore) -> category indices 0..6 (255 stays ignore)."""
    table = np.full(256, IGNORE, dtype=np.uint8)
    table[: len(CATEGORY_OF_TRAIN_ID)] = CATEGORY_OF_TRAIN_ID
    return table[train_ids]


def class_set_from(names: Sequence[str] | None, palette: Sequence[Sequence[int]] | None,
                   num_classes: int | None) -> ClassSet:
    """The class set a checkpoint's configuration records (``model.classes``, ``model.palette``,
    ``model.num_classes``); older checkpoints record only the count: 19 means Cityscapes, others get ``class i``."""
    if names:
        names_t = tuple(str(n) for n in names)
        if palette and len(palette) == len(names_t):
            return ClassSet(names_t, tuple(tuple(int(v) for v in c) for c in palette))  # type: ignore[misc]
        return CITYSCAPES if names_t == CLASSES else ClassSet(names_t, generated_palette(len(names_t)))
    count = int(num_classes or len(CLASSES))
    if count == len(CLASSES):
        return CITYSCAPES
    return ClassSet(tuple(f"class {i}" for i in range(count)), generated_palette(count))


def describe_difference(a: ClassSet, b: ClassSet) -> str:
    """How two class sets differ, in a few words (for one-line errors)."""
    if len(a) != len(b):
        return f"{len(a)} vs {len(b)} classes"
    for i, (x, y) in enumerate(zip(a.names, b.names, strict=True)):
        if x != y:
            return f"class {i} is {x!r} vs {y!r}"
    return "the same names"


def common_class_set(named: Sequence[tuple[str, ClassSet]], what: str = "data.sources and data.targets") -> ClassSet:
    """The one class set of several datasets (``(name, class set)``), else a :class:`ConfigError` naming the
    datasets and how their classes differ. Colours are the first dataset's."""
    if not named:
        return CITYSCAPES
    first_name, first = named[0]
    for name, other in named[1:]:
        if other.names != first.names:
            raise ConfigError(
                f"{what} must share one class set: {first_name} has {first.describe()} but {name} has "
                f"{other.describe()} ({describe_difference(first, other)})")
    return first


def run_classes(datasets: Sequence[tuple[str, ClassSet]], num_classes: int | None, names: Sequence[str] | None,
                palette: Sequence[Sequence[int]] | None) -> ClassSet:
    """The class set of a run: its sources' and targets' common one (:func:`common_class_set`), checked against
    ``model.num_classes`` and ``model.classes`` where they are set (a contradiction is a :class:`ConfigError`);
    ``model.palette``, where set, replaces the colours."""
    data = common_class_set(datasets)
    where = ", ".join(n for n, _ in datasets) or "the data"
    if num_classes is not None and num_classes != len(data):
        raise ConfigError(f"model.num_classes={num_classes} contradicts the data: {where} have {data.describe()}; "
                          "leave model.num_classes unset to follow the data")
    if names and tuple(str(n) for n in names) != data.names:
        given = ClassSet(tuple(str(n) for n in names), generated_palette(len(names)))
        raise ConfigError(f"model.classes contradicts the data: {where} have {data.describe()} "
                          f"({describe_difference(given, data)}); leave model.classes unset to follow the data")
    if palette:
        if len(palette) != len(data) or not all(len(c) == 3 for c in palette):
            raise ConfigError(f"model.palette must give one [r, g, b] per class ({len(data)}), got {len(palette)}")
        data = ClassSet(data.names, tuple((int(c[0]), int(c[1]), int(c[2])) for c in palette))
    return data
