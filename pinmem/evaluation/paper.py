"""The paper's reported numbers (``paper_tables.csv``, shipped as package data) and which row fits a checkpoint.

Rows come from Tables 1, 2, 4 and 12 of Kim et al. (CVPR 2022): IoU in percent, per class where the paper gives
them (Table 1) and mIoU only otherwise. :func:`paper_method_for` maps a checkpoint's training configuration
(method, sources, network) to the paper's naming; :func:`find_paper_rows` returns the matching rows by target.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from importlib import resources

from pinmem.data.labels import CLASSES

#: project method -> the paper's row name (the paper's own runs first, then RobustNet's, which Table 1 quotes)
METHOD_NAMES: dict[str, tuple[str, ...]] = {
    "erm": ("Baseline", "Baseline (RobustNet's run)"),
    "mldg": ("MLDG",),
    "pinmem": ("Pin the Memory",),
    "ibn": ("IBN-Net", "IBN-Net (RobustNet's run)"),
    "isw": ("RobustNet (ISW)",),
}
SOURCE_LETTERS = {"gtav": "G", "synthia": "S", "idd": "I", "cityscapes": "C", "bdd100k": "B", "mapillary": "M"}
TARGET_NAMES = {"cityscapes": "Cityscapes", "bdd100k": "BDD100K", "mapillary": "Mapillary"}
ARCH_NAMES = {"deeplabv3plus": "DeepLabV3+", "deeplabv2": "DeepLabV2"}
BACKBONE_NAMES = {"resnet18": "R18", "resnet34": "R34", "resnet50": "R50", "resnet101": "R101"}
#: CSV column of each class (the CSV uses underscores)
CLASS_COLUMNS = tuple(c.replace(" ", "_") for c in CLASSES)


@dataclass(frozen=True)
class PaperRow:
    """One reported result: ``iou`` per class in percent (None where the paper gives only the mIoU)."""

    table: str
    sources: str
    target: str
    method: str
    network: str
    iou: tuple[float | None, ...]
    miou: float

    @property
    def has_classes(self) -> bool:
        return any(v is not None for v in self.iou)

    def label(self) -> str:
        return f"{self.method}, {self.sources}, {self.network} (paper Table {self.table})"


def _number(text: str) -> float | None:
    text = text.strip()
    return float(text) if text else None


@functools.lru_cache(maxsize=1)
def paper_rows() -> tuple[PaperRow, ...]:
    """Every row of the shipped ``paper_tables.csv``."""
    text = resources.files("pinmem.evaluation").joinpath("paper_tables.csv").read_text(encoding="utf-8")
    rows = []
    for rec in csv.DictReader(text.splitlines()):
        iou = tuple(_number(rec[c]) for c in CLASS_COLUMNS)
        miou = _number(rec["miou"])
        assert miou is not None, f"paper table row without mIoU: {rec}"
        rows.append(PaperRow(rec["table"], rec["sources"], rec["target"], rec["method"], rec["network"], iou, miou))
    return tuple(rows)


def sources_key(sources: list[str] | tuple[str, ...]) -> str:
    """``["synthia", "gtav"]`` -> ``"G+S"`` (the paper's notation and order)."""
    order = list(SOURCE_LETTERS.values())
    letters = [SOURCE_LETTERS.get(s.lower(), s) for s in sources]
    return "+".join(sorted(letters, key=lambda x: (order.index(x) if x in order else len(order), x)))


def network_name(arch: str, backbone: str) -> str:
    """``("deeplabv3plus", "resnet50")`` -> ``"DeepLabV3+ R50"``."""
    return f"{ARCH_NAMES.get(arch, arch)} {BACKBONE_NAMES.get(backbone, backbone)}"


@dataclass(frozen=True)
class PaperQuery:
    """What to look for: the project's method name (or a paper row name), sources and network."""

    method: str
    sources: str
    network: str
    target_bn: bool = False

    def candidates(self) -> tuple[str, ...]:
        if self.method == "mldg" and self.target_bn:
            return ("TSMLDG",)
        return METHOD_NAMES.get(self.method, (self.method,))

    def describe(self) -> str:
        names = " / ".join(self.candidates())
        return f"method {names}, sources {self.sources}, network {self.network}"


def query_from_config(config: object, target_bn: bool = False, method: str | None = None) -> PaperQuery:
    """The paper query for a checkpoint's :class:`pinmem.engine.config.Config` (``method`` overrides it)."""
    return PaperQuery(
        method=method or config.method,  # type: ignore[attr-defined]
        sources=sources_key(config.data.sources),  # type: ignore[attr-defined]
        network=network_name(config.model.arch, config.model.backbone),  # type: ignore[attr-defined]
        target_bn=target_bn,
    )


def find_paper_rows(query: PaperQuery) -> dict[str, PaperRow]:
    """Matching rows keyed by the project's target name (``cityscapes``, ``bdd100k``, ``mapillary``).

    For each target the first candidate method name that has a row wins (e.g. the paper's own baseline before
    RobustNet's run of it). Empty when the paper reports nothing for this method/sources/network.
    """
    rows = paper_rows()
    found: dict[str, PaperRow] = {}
    for key, target in TARGET_NAMES.items():
        for name in query.candidates():
            match = [r for r in rows if r.method.lower() == name.lower() and r.sources == query.sources
                     and r.network == query.network and r.target == target]
            if match:
                found[key] = match[0]
                break
    return found
