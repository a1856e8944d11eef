"""Record the commit of result files written from a copy whose ``.git`` lagged its tree.

A GPU machine gets a copy of the working tree whose ``.git`` can still name an earlier HEAD (seen 2026-12-04: the
session's first commit, though the tree was a later one). A benchmark run there records ``<HEAD>-dirty`` and the
SHA-256 of its diff (``measurement.provenance``). When that hash is exactly the change from HEAD to COMMIT
(``git diff HEAD COMMIT``, results/ excluded), the code that ran is COMMIT's, and this script adds
``"code_commit": COMMIT`` to the file; anything else is refused, naming the file and the reason.

    python benchmarks/attest_commit.py 0a003c9 results/street/gpu/efficientnet_lite0_i2000_c160_b4_lr0.05/*.json
    python benchmarks/attest_commit.py 6f7ceb6 results/device/device_check.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measurement import attest_commit, write_json_atomic  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("commit", help="the commit the copied tree was")
    parser.add_argument("files", nargs="+", type=Path, help="result files (JSON) written there")
    args = parser.parse_args(argv)
    refused = 0
    for path in args.files:
        result = json.loads(path.read_text())
        if result.get("code_commit") or not str(result.get("git_commit", "")).endswith("-dirty"):
            print(f"{path}: already names its commit ({result.get('code_commit') or result.get('git_commit')})")
            continue
        try:
            attested = attest_commit(result, args.commit)
        except ValueError as exc:
            print(f"{path}: not attested: {exc}", file=sys.stderr)
            refused += 1
            continue
        write_json_atomic(path, attested)
        print(f"{path}: from {attested['code_commit'][:7]} (diff {result['diff_sha256'][:12]} matches)")
    return 1 if refused else 0


if __name__ == "__main__":
    raise SystemExit(main())
