# charrnn — `make` or `make help` lists the targets.
# Every notebook runs headlessly through papermill on the project's own .venv kernel.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUT := outputs
DATASET ?= tinyshakespeare
DATA_DIR := $(OUT)/data/$(DATASET)
TIMEOUT ?= 7200
export TF_CPP_MIN_LOG_LEVEL := 2
PAPERMILL := $(PY) -m papermill --log-output --execution-timeout $(TIMEOUT) --cwd notebooks -k python3

# Stateless run (notebook 02): 10 epochs of 1000 batches, about 20 min on 2 CPU cores.
# The seed's schedule (every window once per epoch): make train-stateless STEPS=None RUN=stateless-full
RUN ?= stateless
EPOCHS ?= 10
STEPS ?= 1000
# Stateful run (notebook 03): the seed's 50 epochs over 32 parallel streams, about 20 min.
SRUN ?= stateful
SEPOCHS ?= 50
STREAMS ?= 32
# Generation (make generate GEN_RUN=outputs/runs/stateful PROMPT="ROMEO:")
GEN_RUN ?= $(OUT)/runs/$(SRUN)
PROMPT ?= ROMEO:
NCHARS ?= 500
TEMPERATURE ?= 0.8

.DEFAULT_GOAL := help
.PHONY: help setup data train-stateless train-stateful generate test lint bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'
	@echo "  variables: RUN EPOCHS STEPS (stateless), SRUN SEPOCHS STREAMS (stateful), GEN_RUN PROMPT NCHARS TEMPERATURE"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(STAMP) ## create .venv and install the package with its dev tools

$(DATA_DIR)/meta.json: | $(STAMP)
	mkdir -p $(DATA_DIR)
	$(PAPERMILL) notebooks/01_data_prep.ipynb $(DATA_DIR)/01_data_prep.ipynb \
		-p dataset_name $(DATASET)

data: $(STAMP) ## notebook 01: tokenize and split the corpus into outputs/data/<dataset>/
	rm -f $(DATA_DIR)/meta.json
	$(MAKE) --no-print-directory $(DATA_DIR)/meta.json

train-stateless: $(DATA_DIR)/meta.json ## notebook 02: stateless GRU on shuffled windows into outputs/runs/$(RUN)/
	mkdir -p $(OUT)/runs/$(RUN)
	$(PAPERMILL) notebooks/02_train_stateless.ipynb $(OUT)/runs/$(RUN)/02_train_stateless.ipynb \
		-p run_name $(RUN) -p epochs $(EPOCHS) -p steps_per_epoch $(STEPS) -p dataset_name $(DATASET)

train-stateful: $(DATA_DIR)/meta.json ## the main job, notebook 03: stateful GRU on parallel streams into outputs/runs/$(SRUN)/
	mkdir -p $(OUT)/runs/$(SRUN)
	$(PAPERMILL) notebooks/03_train_stateful.ipynb $(OUT)/runs/$(SRUN)/03_train_stateful.ipynb \
		-p run_name $(SRUN) -p epochs $(SEPOCHS) -p batch_size $(STREAMS) -p dataset_name $(DATASET)

generate: $(STAMP) ## sample text from a finished run (GEN_RUN, PROMPT, NCHARS, TEMPERATURE)
	$(PY) -m charrnn generate --run $(GEN_RUN) --prompt "$(PROMPT)" --n-chars $(NCHARS) \
		--temperature $(TEMPERATURE)

test: $(STAMP) ## unit tests and every notebook through papermill on tiny parameters
	$(PY) -m pytest

lint: $(STAMP) ## ruff
	$(VENV)/bin/ruff check .

bench: $(STAMP) ## benchmarks against the seed's approach; table on stdout, JSON in outputs/bench/
	$(PY) -m charrnn.bench

clean: ## remove generated outputs (keeps .venv and the cached corpus)
	find $(OUT) -mindepth 1 -maxdepth 1 ! -name README.md ! -name data -exec rm -rf {} +
	find $(OUT)/data -mindepth 1 -maxdepth 1 ! -name raw -exec rm -rf {} + 2>/dev/null || true
	rm -rf .pytest_cache .ruff_cache
