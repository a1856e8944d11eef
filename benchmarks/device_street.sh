#!/usr/bin/env bash
# The street-world grid on one lent GPU (issue 20): erm, mldg and pinmem × seeds 304-306 at a budget the 2-core CPU
# cannot reach (3,000 iterations by default; --iterations auto: the largest that fits, 2,000 on an H200 on
# 2026-12-04), the CPU grid's world, crop, batch and lr, all nine runs
# as parallel processes on the one GPU, within one device call of at most 9 minutes, the set-up included.
#
#   bash benchmarks/device_street.sh                          # GPU: results/street/gpu/<budget>/*.json
#   bash benchmarks/device_street.sh --tiny --device cpu      # seconds on a CPU: the same logic at toy size
#   bash benchmarks/device_street.sh --iterations auto        # the largest of 5000/3000/2000/1000/500 that fits
#   options: --iterations N|auto (3000)  --parallel N (9)  --deadline SECONDS (420: runs still going then are
#            stopped)  --probe N (50: auto's timing runs)  --budgets "N..." (auto's choices, largest first)
#            --results DIR  --work DIR  --device DEV (cuda)
#            --variants V... (main)  --seeds "304 305" (all three; --tiny: 304)
#
# --iterations auto first trains every selected run for --probe iterations, all in parallel as the real runs will
# be (a probe: its results stay under --work), reads the slowest run's seconds per iteration (log.jsonl, between the
# first and the last logged iteration; the rest of the probe's time is the fixed part: start, world check,
# evaluation), and then runs the largest budget of the list that ends before the deadline with a 15 % margin; none
# that fits: it stops and says so.
#
# On the device tool: run `bash benchmarks/device_street.sh --iterations auto --deadline 525` with timeout_s=585
# and carry ["runs/device_wheels"] (bash benchmarks/device_check.sh --fetch-wheels here first). Only 8 files come
# back from $OUT, so the results are packed into $OUT/street_gpu.tar.gz (when $OUT is set); unpack it in the
# repository root. The copy there may carry a .git that lags the tree (2026-12-04: the session's first HEAD, though
# the tree was a later commit), so its results name HEAD-dirty and the diff's hash; before committing them,
# `python benchmarks/attest_commit.py COMMIT results/street/gpu/<budget>/*.json` checks that
# the hash is exactly the change from that HEAD to COMMIT and records COMMIT (anything else is refused).
#
# Measured on an H200 (2026-12-04, 16 cores): environment 22-36 s; world 10 s when the machine still had it, 73 s
# to render it (16 processes; byte-identical to the CPU's manifest); the probe of 9 × 50 iterations 54 s (0.168
# s/iteration for the slowest, pinmem, with 9 processes sharing the GPU; 42 s fixed); then 9 × 2,000 iterations
# in 341 s (erm 211 s, mldg 267 s, pinmem 328 s each); 431 s in all. A fresh machine renders the world first
# (about 65 s more), and auto then chooses 1,000; 2,000 needs the world already there (a second call on the warm
# machine, as that day: the first call's runs had stopped on the lagging .git above). The report:
#   python benchmarks/dg_street.py --lr 0.05 --iterations 2000 --results results/street/gpu --report
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

SEEDS_ALL="304 305 306"
DEVICE=cuda ITERATIONS=3000 PARALLEL=9 DEADLINE=420 TINY=0 RESULTS="" WORK="" VARIANTS=(main) SEEDS="" PROBE=50
BUDGETS="5000 3000 2000 1000 500"
while [ $# -gt 0 ]; do
    case "$1" in
        --tiny) TINY=1 ;;
        --device) DEVICE=$2; shift ;;
        --iterations) ITERATIONS=$2; shift ;;
        --parallel) PARALLEL=$2; shift ;;
        --deadline) DEADLINE=$2; shift ;;
        --probe) PROBE=$2; shift ;;
        --budgets) BUDGETS=$2; shift ;;
        --results) RESULTS=$2; shift ;;
        --work) WORK=$2; shift ;;
        --seeds) SEEDS=$2; shift ;;
        --variants) VARIANTS=(); while [ $# -gt 1 ] && [ "${2#--}" = "$2" ]; do VARIANTS+=("$2"); shift; done ;;
        *) echo "device_street.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
if [ "$TINY" = 1 ]; then
    [ "$ITERATIONS" = 3000 ] && ITERATIONS=2
    ARGS=(--backbone resnet18 --scratch --crop 32 --num-train 4 --num-val 1 --world-size 64 32)
    RESULTS=${RESULTS:-runs/device_street_tiny/results} WORK=${WORK:-runs/device_street_tiny/work}
    SEEDS=${SEEDS:-304}
else
    ARGS=(--lr 0.05)
    RESULTS=${RESULTS:-results/street/gpu} WORK=${WORK:-runs/street-gpu}
    SEEDS=${SEEDS:-$SEEDS_ALL}
fi
ARGS+=(--device "$DEVICE" --threads 1)

# shellcheck source=benchmarks/device_env.sh
source benchmarks/device_env.sh
prepare_python
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS=1
grid() { "$PY" benchmarks/dg_street.py "${ARGS[@]}" --results "$RESULTS" --work "$WORK" "$@"; }
"$PY" -c "import torch; print('== device:', torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')"

grid --prepare-world --world-workers "$(nproc)"   # once, before the parallel runs (they only read it)
echo "== world ready at $(($(date +%s) - start)) s"

mapfile -t RUNS < <(grid --list --variants "${VARIANTS[@]}" --methods erm mldg pinmem | awk '{print $NF}' |
                    grep -E -- "-s(${SEEDS// /|})\$" || true)

# run_all ITERATIONS RESULTS LOGS: every run of RUNS, PARALLEL at a time, each stopped at the deadline (in WORK,
# whose world they share; a run's folder there names its budget)
run_all() {
    local iterations=$1 results=$2 logs=$3 key pid left failed=0 pids=()
    mkdir -p "$logs"
    left=$((DEADLINE - ($(date +%s) - start)))
    echo "== ${#RUNS[@]} runs of $iterations iterations, $PARALLEL at a time, stopped after $left s"
    for key in "${RUNS[@]}"; do
        while [ "$(jobs -rp | wc -l)" -ge "$PARALLEL" ]; do sleep 1; done
        left=$((DEADLINE - ($(date +%s) - start)))
        [ "$left" -gt 0 ] || { echo "== no time left for $key"; continue; }
        timeout --signal=TERM "$left" "$PY" benchmarks/dg_street.py "${ARGS[@]}" --iterations "$iterations" \
            --results "$results" --work "$WORK" --only "$key" > "$logs/$key.log" 2>&1 &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || failed=$((failed + 1)); done
    echo "== runs done at $(($(date +%s) - start)) s ($failed stopped or failed; logs in $logs)"
    tail -n 2 "$logs"/*.log || true
}

if [ "$ITERATIONS" = auto ]; then
    probe_start=$(date +%s)
    run_all "$PROBE" "$WORK/probe/results" "$WORK/probe/logs"
    ITERATIONS=$("$PY" benchmarks/dg_street.py "${ARGS[@]}" --iterations "$PROBE" --work "$WORK" \
                 --results "$WORK/probe/results" --plan-iterations $(($(date +%s) - probe_start)) --plan-budgets $BUDGETS \
                 --seconds-left $((DEADLINE - ($(date +%s) - start)))) || exit 1
    echo "== budget: $ITERATIONS iterations"
fi
ARGS+=(--iterations "$ITERATIONS")
run_all "$ITERATIONS" "$RESULTS" "$WORK/logs"

grid --report || echo "== no finished run to report"
if [ -n "${OUT:-}" ]; then
    tar czf "$OUT/street_gpu.tar.gz" "$RESULTS" "$WORK/logs" $([ -d "$WORK/probe/logs" ] && echo "$WORK/probe/logs")
    echo "== packed into $OUT/street_gpu.tar.gz"
fi
echo "== done in $(($(date +%s) - start)) s"
