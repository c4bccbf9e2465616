# Two entry points for a fresh machine with only Python 3.11:
#   make demo   set everything up, run a small RNP-vs-VER grid on the synthetic benchmark, print the
#               table and write the reproduction report (results/demo/report.md)
#   make test   set everything up, then ruff, mypy and the test suite (what CI runs: .ci/run)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_RESULTS ?= results/demo

.PHONY: setup demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: the CPU wheel CI tests (pyproject.toml accepts torch>=2.5,<3); an
	# unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/ratbench run --methods rnp,ver --datasets synthetic.appearance --seeds 1-5 --preset demo --set synthetic.n_train=4000 --workers 2 --results-dir $(DEMO_RESULTS)
	$(BIN)/ratbench table --results-dir $(DEMO_RESULTS) --compare ver,rnp
	$(BIN)/ratbench report --results-dir $(DEMO_RESULTS) --out $(DEMO_RESULTS)/report.md

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy ratbench/
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf $(VENV) build dist
