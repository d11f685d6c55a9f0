# edgellm-gym: `make demo` and `make test` work on a fresh machine with Python 3.10+.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: a bare `torch` would pull several GB of CUDA packages.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/edgellm demo

test: $(STAMP)
	$(PY) -m pytest -q

# Exit code 5 is pytest's "no tests collected": no slow test is not a failure.
test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow || [ $$? -eq 5 ]

lint: $(STAMP)
	$(PY) -m ruff check .

bench: $(STAMP)
	$(PY) benchmarks/bench_dftsp.py
	$(PY) benchmarks/bench_env.py
	$(PY) benchmarks/bench_profile.py
	$(PY) benchmarks/bench_weights.py
	$(PY) benchmarks/bench_learning.py

clean:
	rm -rf $(VENV) build *.egg-info
