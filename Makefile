# Two entry points: `make demo` and `make test`. Both create .venv and install everything first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo demo-ray test benchmark clean

setup: $(STAMP)

# torch goes first and pinned: 2.13.0 is a CPU build; an unpinned torch pulls a multi-GB CUDA build.
# constraints.txt holds the rest of the environment at the versions the tests last passed with.
$(STAMP): pyproject.toml Makefile constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[optuna,dashboard,tune,bench,dev]" -c constraints.txt
	touch $(STAMP)

demo: setup
	$(PY) examples/demo_optuna.py

demo-ray: setup
	$(PY) examples/demo_ray.py

test: setup
	$(PY) -m pytest -q

benchmark: setup
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) build *.egg-info
