#!/usr/bin/env bash
# The runs behind the street-world verdict (issue 20), in the order that answers the most first, resumable: every
# finished run leaves its JSON under results/street/ and a rerun of this script skips it (a 1,000-iteration run
# also resumes from its last tenth). Run it from a clean worktree of a commit, so every file names that commit:
#   git worktree add ../grid HEAD && cd ../grid && nohup bash benchmarks/street_verdict.sh > ../grid.log 2>&1 &
# Then copy results/street/ back and commit. PY defaults to .venv/bin/python; THREADS to 2 (every row so far).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
grid() { "$PY" benchmarks/dg_street.py --lr 0.05 --threads "${THREADS:-2}" "$@"; }
three=(erm mldg pinmem)
for seed in 304 305 306; do
    grid --only "${three[@]/%/-jitter-s$seed}"                       # the released jitter, for every method
    grid --reproduce --only "${three[@]/%/-main-s$seed}"             # the rows from an uncommitted tree
    if [ "$seed" = 304 ]; then
        grid --iterations 100 --variants main --methods "${three[@]}"   # the budget curve's first point
    fi
done
grid --iterations 100 --variants jitter --methods "${three[@]}"
grid --reproduce --variants main                                      # ibn and isw
grid --iterations 1000 --variants main --methods "${three[@]}"
grid --iterations 1000 --variants jitter --methods "${three[@]}"
grid --reproduce                                                      # the ablations
