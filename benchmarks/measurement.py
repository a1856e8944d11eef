"""The record every CPU measurement benchmark writes beside its numbers, so that a number in the README or the docs
comes from a committed file: ``results/measurements/<name>.json`` with the git commit, the exact command, the
machine, its load average before and after (a number measured beside other jobs can be told apart) and the
wall time.

    record = start_record("bench_synth", argv)       # argv: the script's arguments (None: sys.argv[1:])
    ...measure...
    path = finish_record(record, {"render_s": 21.0, ...}, out)   # out: None -> results/measurements/<name>.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MEASUREMENTS = REPO / "results" / "measurements"


def _head_and_changes() -> tuple[str, list[str]]:
    """``HEAD``'s hash and the tracked files outside ``results/`` that differ from it (``unknown`` and none
    outside a checkout). Result files do not count: they are what the code writes (a grid rewrites its own
    reproduced files as it goes), not the code that produced a number."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                 ":(exclude)results"], cwd=REPO, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown", []
    return head.stdout.strip(), [line[3:] for line in status.stdout.splitlines() if line.strip()]


def git_commit() -> str:
    """``HEAD``'s hash, with ``-dirty`` when tracked files outside ``results/`` differ from it."""
    head, changed = _head_and_changes()
    return head + ("-dirty" if changed else "")


#: set (to anything but "" or "0") to allow writing from an uncommitted tree without --allow-dirty: the test suite
#: sets it, because it runs the benchmarks at toy size inside a working tree
ALLOW_DIRTY_ENV = "PINMEM_ALLOW_DIRTY"


def add_allow_dirty_argument(parser: argparse.ArgumentParser) -> None:
    """The one flag with which every benchmark that writes a result file accepts an uncommitted tree."""
    parser.add_argument("--allow-dirty", action="store_true",
                        help="write the result file even with uncommitted changes to tracked files (it then says "
                             '"dirty": true and records the hash of the diff)')


def provenance(allow_dirty: bool = False) -> dict[str, Any]:
    """The code a result file comes from: ``{"git_commit": HEAD}`` on a clean tree. A tree with uncommitted
    changes to tracked files (outside ``results/``) is refused with one line and exit status 2, so that no
    committed number comes from code that is not in the history; with ``allow_dirty`` (or ``PINMEM_ALLOW_DIRTY``)
    the record says ``"dirty": true`` and carries the SHA-256 of ``git diff HEAD``, which names the code exactly
    enough to tell two dirty runs apart."""
    head, changed = _head_and_changes()
    if not changed:
        return {"git_commit": head}
    if not (allow_dirty or os.environ.get(ALLOW_DIRTY_ENV, "") not in ("", "0")):
        print(f"benchmarks: error: uncommitted changes to tracked files ({', '.join(changed)}): a result file "
              "must come from committed code; commit them (or run from a clean worktree), or pass --allow-dirty "
              'to write it marked "dirty": true', file=sys.stderr)
        raise SystemExit(2)
    diff = subprocess.run(["git", "diff", "HEAD", "--", ".", ":(exclude)results"], cwd=REPO,
                          capture_output=True).stdout
    return {"git_commit": head + "-dirty", "dirty": True, "diff_sha256": hashlib.sha256(diff).hexdigest()}


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write a result file atomically: a stopped process leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)


def attest_commit(result: dict[str, Any], commit: str, repo: Path = REPO) -> dict[str, Any]:
    """``result`` (from a ``-dirty`` tree) with ``"code_commit": commit`` added, when its recorded diff is exactly
    the change from its HEAD to ``commit`` (``git diff HEAD..commit``, results/ excluded, hashed as
    :func:`provenance` hashes it): the same code, run from a tree whose ``.git`` lagged (a copy sent to another
    machine). Anything else is refused with the reason."""
    recorded = str(result.get("git_commit", ""))
    if not recorded.endswith("-dirty") or "diff_sha256" not in result:
        raise ValueError(f"names no dirty tree with a diff hash (git_commit {recorded!r})")
    head = recorded.removesuffix("-dirty")
    diff = subprocess.run(["git", "diff", head, commit, "--", ".", ":(exclude)results"], cwd=repo,
                          capture_output=True, check=True).stdout
    if hashlib.sha256(diff).hexdigest() != result["diff_sha256"]:
        raise ValueError(f"its diff is not the change from {head[:7]} to {commit[:7]}")
    full = subprocess.run(["git", "rev-parse", commit], cwd=repo, capture_output=True, text=True,
                          check=True).stdout.strip()
    return {**result, "code_commit": full}


def cpu_model() -> str:
    """The processor's name as the kernel reports it (``model name`` in /proc/cpuinfo), else platform's."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """What decides a run's arithmetic beside the code: the processor and the kernels torch picks for it (oneDNN
    and MKL take other paths on other instruction sets), torch's version and threads, and the GPU if one ran it."""
    import torch

    info: dict[str, Any] = {
        "cpu": cpu_model(), "cpu_count": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
        "device": device,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
        info["cuda"] = torch.version.cuda
    return info


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else []


def start_record(name: str, argv: list[str] | None = None, script: str | None = None,
                 allow_dirty: bool = False) -> dict[str, Any]:
    """The header of a measurement: taken before measuring (the load average then, the start time); refuses an
    uncommitted tree unless ``allow_dirty`` (see :func:`provenance`)."""
    import torch

    args = sys.argv[1:] if argv is None else list(argv)
    return {
        "benchmark": name,
        **provenance(allow_dirty),
        "command": shlex.join(["python", f"benchmarks/{script or name + '.py'}", *args]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"cpu_count": os.cpu_count(), "cpu": cpu_model(), "python": platform.python_version(),
                    "cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
                    "nice": os.nice(0) if hasattr(os, "nice") else None},
        "load_average_before": _load(),
        "_start": time.perf_counter(),
    }


def finish_record(record: dict[str, Any], results: dict[str, Any], out: str | Path | None = None) -> Path:
    """Add ``results``, the load average now and the wall time; write the JSON (default
    ``results/measurements/<name>.json``) and return its path."""
    final = {k: v for k, v in record.items() if k != "_start"}
    final["load_average_after"] = _load()
    final["wall_s"] = round(time.perf_counter() - record["_start"], 1)
    final["results"] = results
    path = Path(out) if out is not None else MEASUREMENTS / f"{record['benchmark']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(final, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return path
