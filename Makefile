# Set up, run the demo, run the tests. `make demo` and `make test` are the README's two commands.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first and pinned: on this CPU-only machine 2.13.0 is a local CPU wheel; elsewhere pip
# takes the usual build for the platform (CUDA on Linux, MPS-enabled on a Mac).
TORCH ?= torch==2.13.0
export SEMSEARCH_DATA ?= $(abspath ../shared/data)

.PHONY: install demo test lint bench clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install "$(TORCH)"
	$(BIN)/python -m pip install -e '.[dev,plot,bench,serve,notebook,onnx,distributed]'
	touch $@

install: $(VENV)/.installed

models/quick/config.json: | install
	$(BIN)/semsearch train --preset quick

demo: models/quick/config.json
	$(BIN)/semsearch index corpora/docs.txt --model models/quick
	$(BIN)/semsearch query "Machine learning and AI" -k 2

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check semsearch tests bench

bench: install
	$(BIN)/python bench/bench_train.py --preset quick --preset production
	$(BIN)/python bench/bench_index.py --random-vectors 384 --limit 100000

clean:
	rm -rf $(VENV) build *.egg-info
