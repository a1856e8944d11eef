#!/usr/bin/env bash
# The device check with its environment: training iterations/s, peak GPU memory and projected G+S hours of erm,
# mldg and pinmem (1st and 2nd order) at R50 DeepLabV3+, 768², 4 + 4 images, bf16; inference memory ÷ baseline at
# 2048×1024 (benchmarks/device_check.py). Under 8 minutes on one H100/H200, the environment included.
#
#   bash benchmarks/device_check.sh                          # GPU: writes results/device/device_check.{json,md}
#   bash benchmarks/device_check.sh --device cpu --tiny      # seconds on a CPU (a smoke run)
#   bash benchmarks/device_check.sh --fetch-wheels           # on a machine with PyPI, before a GPU session (below)
#
# Every other option goes to device_check.py (--out DIR, --iterations N, ...).
#
# The environment (a python with torch and pinmem's dependencies, from wheels carried to a machine without PyPI):
# benchmarks/device_env.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=benchmarks/device_env.sh
source benchmarks/device_env.sh

if [ "${1:-}" = "--fetch-wheels" ]; then
    fetch_wheels
    exit 0
fi

OUT_DIR=results/device
ARGS=("$@")
for ((i = 0; i < ${#ARGS[@]}; i++)); do
    case "${ARGS[i]}" in
        --out) OUT_DIR=${ARGS[i + 1]:-$OUT_DIR} ;;
        --out=*) OUT_DIR=${ARGS[i]#--out=} ;;
    esac
done

start=$(date +%s)
prepare_python

export PYTHONUNBUFFERED=1
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$PY" benchmarks/device_check.py "${ARGS[@]}"
echo
cat "$OUT_DIR/device_check.md"
echo "== done in $(($(date +%s) - start)) s"
