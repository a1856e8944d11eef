#!/usr/bin/env bash
# The whole street-world benchmark, resumable: choose the learning rate by leave-one-domain-out on the sources
# (ERM trained on gtav, scored on synthia val; the targets are never looked at), then fill the grid with it.
# Every finished run leaves a JSON under results/street/; rerunning skips what exists.
#   nohup bash benchmarks/dg_street_all.sh > runs/dg_street.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p results/street/lr_selection
"$PY" benchmarks/dg_street.py --select-lr 0.01 0.02 0.05 "$@"   # 3 seeds each; writes lr_selection/summary.json
LR=$("$PY" -c "import json; print(json.load(open('results/street/lr_selection/summary.json'))['chosen'])")
echo "learning rate chosen on the sources: $LR"
"$PY" benchmarks/dg_street.py --lr "$LR" "$@"
