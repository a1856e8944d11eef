"""The memory's read entropy and slot similarity over training, from the runs' ``log.jsonl``.

    python benchmarks/memory_curves.py runs/street/<budget> --out results/street/<budget>/diagnostics

Pin the Memory logs, every ``train.log_every`` iterations, ``read_entropy`` (mean entropy in nats of the noise-free
read softmax(s/τ) on the meta-train batch; log N is a uniform read) and ``slot_cosine`` (mean cosine similarity
between distinct slots of M). This script collects them for every run directory with a ``log.jsonl`` holding
them, writes ``training_curves.json`` (the numbers, so they survive without the run directories, which are not
committed) and ``training_curves.png``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

KEYS = ("read_entropy", "slot_cosine")


def read_curves(run_dir: Path) -> dict[str, list[float]] | None:
    """Iterations and the two statistics of one run, or None when its log has none of them."""
    log = run_dir / "log.jsonl"
    if not log.is_file():
        return None
    curves: dict[str, list[float]] = {"iteration": [], **{k: [] for k in KEYS}}
    for line in log.read_text().splitlines():
        record = json.loads(line)
        if record.get("kind") == "train" and all(k in record for k in KEYS):
            curves["iteration"].append(record["iteration"])
            for k in KEYS:
                curves[k].append(round(float(record[k]), 5))
    return curves if curves["iteration"] else None


def plot(curves: dict[str, dict[str, list[float]]], num_slots: int, path: Path) -> None:
    from pinmem.evaluation.plots import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for name, c in sorted(curves.items()):
        style = "-" if "-main-" in name else "--"
        for ax, key in zip(axes, KEYS, strict=True):
            ax.plot(c["iteration"], c[key], style, label=name, linewidth=1)
    axes[0].axhline(math.log(num_slots), color="k", linewidth=0.6)
    axes[0].set_title(f"read entropy (nats; uniform = log {num_slots} = {math.log(num_slots):.3f})", fontsize=8)
    axes[1].set_title("mean cosine similarity between memory slots", fontsize=8)
    for ax in axes:
        ax.set_xlabel("iteration", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[1].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, help="a folder of run directories (runs/street/<budget>)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--num-slots", type=int, default=19)
    args = parser.parse_args()
    curves = {d.name: c for d in sorted(args.runs.iterdir()) if d.is_dir() and (c := read_curves(d)) is not None}
    if not curves:
        raise SystemExit(f"no run under {args.runs} logged {KEYS}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "training_curves.json").write_text(json.dumps(curves, indent=1))
    plot(curves, args.num_slots, args.out / "training_curves.png")
    for name, c in curves.items():
        print(f"{name}: read_entropy {c['read_entropy'][0]:.3f} → {c['read_entropy'][-1]:.3f}, "
              f"slot_cosine {c['slot_cosine'][0]:.3f} → {c['slot_cosine'][-1]:.3f}")


if __name__ == "__main__":
    main()
