#!/usr/bin/env bash
# The street-world grid on one lent GPU (issue 20): erm, mldg and pinmem × seeds 304-306 at a budget the 2-core CPU
# cannot reach (3,000 iterations, ten times the CPU grid's), the CPU grid's world, crop, batch and lr, all nine runs
# as parallel processes on the one GPU, within one device call of at most 9 minutes, the set-up included.
#
#   bash benchmarks/device_street.sh                          # GPU: results/street/gpu/<budget>/*.json
#   bash benchmarks/device_street.sh --tiny --device cpu      # seconds on a CPU: the same logic at toy size
#   options: --iterations N (3000)  --parallel N (9)  --deadline SECONDS (420: runs still going then are stopped)
#            --results DIR  --work DIR  --device DEV (cuda)  --variants V... (main)  --seeds "304 305" (all three;
#            --tiny: 304)
#
# On the device tool: run `bash benchmarks/device_street.sh` with timeout_s=540 and carry ["runs/device_wheels"]
# (bash benchmarks/device_check.sh --fetch-wheels here first). Only 8 files come back from $OUT, so the results are
# packed into $OUT/street_gpu.tar.gz (when $OUT is set); unpack it in the repository root and commit the JSONs.
# Expected on an H100/H200: never measured yet (no session has been lent one since this script was written); the
# first run's logs (in the archive) give the set-up, world and per-run times. Every result names the GPU, and the
# report command below makes the table from the JSONs:
#   python benchmarks/dg_street.py --lr 0.05 --iterations 3000 --results results/street/gpu --report
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

SEEDS_ALL="304 305 306"
DEVICE=cuda ITERATIONS=3000 PARALLEL=9 DEADLINE=420 TINY=0 RESULTS="" WORK="" VARIANTS=(main) SEEDS=""
while [ $# -gt 0 ]; do
    case "$1" in
        --tiny) TINY=1 ;;
        --device) DEVICE=$2; shift ;;
        --iterations) ITERATIONS=$2; shift ;;
        --parallel) PARALLEL=$2; shift ;;
        --deadline) DEADLINE=$2; shift ;;
        --results) RESULTS=$2; shift ;;
        --work) WORK=$2; shift ;;
        --seeds) SEEDS=$2; shift ;;
        --variants) VARIANTS=(); while [ $# -gt 1 ] && [ "${2#--}" = "$2" ]; do VARIANTS+=("$2"); shift; done ;;
        *) echo "device_street.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
if [ "$TINY" = 1 ]; then
    ARGS=(--backbone resnet18 --scratch --iterations 2 --crop 32 --num-train 4 --num-val 1 --world-size 64 32)
    RESULTS=${RESULTS:-runs/device_street_tiny/results} WORK=${WORK:-runs/device_street_tiny/work}
    SEEDS=${SEEDS:-304}
else
    ARGS=(--lr 0.05 --iterations "$ITERATIONS")
    RESULTS=${RESULTS:-results/street/gpu} WORK=${WORK:-runs/street-gpu}
    SEEDS=${SEEDS:-$SEEDS_ALL}
fi
ARGS+=(--device "$DEVICE" --threads 1 --results "$RESULTS" --work "$WORK")

# shellcheck source=benchmarks/device_env.sh
source benchmarks/device_env.sh
prepare_python
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS=1
grid() { "$PY" benchmarks/dg_street.py "${ARGS[@]}" "$@"; }
"$PY" -c "import torch; print('== device:', torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')"

grid --prepare-world   # once, before the parallel runs (they only read it)
echo "== world ready at $(($(date +%s) - start)) s"

mkdir -p "$WORK/logs"
PIDS=()
mapfile -t RUNS < <(grid --list --variants "${VARIANTS[@]}" --methods erm mldg pinmem | awk '{print $NF}' |
                    grep -E -- "-s(${SEEDS// /|})\$" || true)
left=$((DEADLINE - ($(date +%s) - start)))
echo "== ${#RUNS[@]} runs, $PARALLEL at a time, stopped after $left s"
for key in "${RUNS[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$PARALLEL" ]; do sleep 1; done
    left=$((DEADLINE - ($(date +%s) - start)))
    [ "$left" -gt 0 ] || { echo "== no time left for $key"; continue; }
    timeout --signal=TERM "$left" "$PY" benchmarks/dg_street.py "${ARGS[@]}" --only "$key" \
        > "$WORK/logs/$key.log" 2>&1 &
    PIDS+=($!)
done
failed=0
for pid in "${PIDS[@]}"; do wait "$pid" || failed=$((failed + 1)); done
echo "== runs done at $(($(date +%s) - start)) s ($failed stopped or failed; logs in $WORK/logs)"
tail -n 2 "$WORK"/logs/*.log || true

grid --report || echo "== no finished run to report"
if [ -n "${OUT:-}" ]; then
    tar czf "$OUT/street_gpu.tar.gz" "$RESULTS" "$WORK/logs"
    echo "== packed into $OUT/street_gpu.tar.gz"
fi
echo "== done in $(($(date +%s) - start)) s"
