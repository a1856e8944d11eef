"""Training logs: a JSON-lines file (always) and TensorBoard scalars (when ``tensorboard`` is installed)."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("pinmem")


class MetricLogger:
    """Writes ``{"iteration": t, "time": …, **scalars}`` lines to ``OUT/log.jsonl`` and the same scalars to
    TensorBoard under ``OUT/tb``. A no-op on ranks other than 0."""

    def __init__(self, out_dir: Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.enabled = enabled
        self.path = out_dir / "log.jsonl"
        self.writer = None
        if not enabled:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(out_dir / "tb"))
            except ImportError:
                log.info("tensorboard is not installed: scalars go to %s only", self.path)

    def log(self, iteration: int, scalars: dict[str, float], kind: str = "train") -> None:
        if not self.enabled:
            return
        clean = {k: (float(v) if math.isfinite(float(v)) else str(float(v))) for k, v in scalars.items()}
        record: dict[str, Any] = {"kind": kind, "iteration": iteration, "time": round(time.time(), 3), **clean}
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in scalars.items():
                self.writer.add_scalar(f"{kind}/{key}", float(value), iteration)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``log.jsonl`` file."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
