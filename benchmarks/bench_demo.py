"""The demo's methods one after the other in one process (all the cores as threads) against one process per method
(the cores shared out): ``pinmem demo --processes 1`` and ``--processes 2`` on the same world, side by side.

Each round trains and evaluates erm and pinmem afresh in both modes (the order alternates between rounds, so that
a background load hits them alike); the world is written once and reused. The stage times come from the demo's own
``report/summary.json``; the record (commit, command, load average) goes to
``results/measurements/bench_demo.json`` (``--out``; ``benchmarks/measurement.py``). Run::

    python benchmarks/bench_demo.py                      # the demo's settings, 1 round (about 13 minutes)
    python benchmarks/bench_demo.py --iterations 60      # shorter training, the same evaluation
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measurement import add_allow_dirty_argument, finish_record, start_record  # noqa: E402

MODES = {"one after the other": 1, "one process per method": 2}


def run_mode(out: Path, processes: int, args: argparse.Namespace) -> dict[str, float]:
    """One demo in ``out`` (its world kept, its runs removed first); the wall time of each stage and in all."""
    shutil.rmtree(out / "runs", ignore_errors=True)
    command = [sys.executable, "-m", "pinmem.cli", "demo", "--out", str(out), "--quiet",
               "--processes", str(processes)]
    command += ["--tiny", "--workers", "1"] if args.tiny else ["--iterations", str(args.iterations)]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    stages = json.loads((out / "report" / "summary.json").read_text())["wall_s"]
    return {"process_s": round(wall, 1), **stages}


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=150, help="training iterations (the demo's: 150)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--work", type=Path, default=None, help="the demo folder (default: a temporary one)")
    parser.add_argument("--tiny", action="store_true", help="the demo's --tiny sizes (seconds; for the tests)")
    parser.add_argument("--out", type=Path, default=None,
                        help="the JSON to write (default results/measurements/bench_demo.json)")
    add_allow_dirty_argument(parser)
    args = parser.parse_args(argv)
    record = start_record("bench_demo", argv, allow_dirty=args.allow_dirty)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp) / "demo"
        times: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
        for r in range(args.rounds):
            order = list(MODES) if r % 2 == 0 else list(reversed(MODES))
            for mode in order:
                times[mode].append(run_mode(work, MODES[mode], args))
                print(f"round {r + 1}, {mode}: {times[mode][-1]}", flush=True)
    # the world is written by the first demo only: compare what both do, training + evaluation + report
    compared = {mode: statistics.median(sum(v for k, v in t.items() if k not in ("world", "process_s"))
                                        for t in runs) for mode, runs in times.items()}
    ratio = compared["one process per method"] / compared["one after the other"]
    print(f"train + evaluate + report: {compared['one after the other']:.0f} s one after the other, "
          f"{compared['one process per method']:.0f} s in one process per method ({ratio:.2f}x)")
    results = {"iterations": args.iterations, "rounds": args.rounds, "runs": times,
               "train_evaluate_report_s": compared, "ratio_parallel_to_sequential": round(ratio, 3)}
    finish_record(record, results, args.out)
    return results


if __name__ == "__main__":
    main()
