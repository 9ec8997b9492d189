# charrnn — `make` or `make help` lists the targets.
# Every notebook runs headlessly through papermill on the project's own .venv kernel.
# Training defaults live in one place, each notebook's `parameters` cell; variables given
# here (make train-stateless EPOCHS=3) are passed on, the others keep the notebook's value.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUT := outputs
DATASET ?= tinyshakespeare
DATA_DIR := $(OUT)/data/$(DATASET)
TIMEOUT ?= 7200# seconds per notebook cell; TIMEOUT=-1 for runs longer than 2 hours
export TF_CPP_MIN_LOG_LEVEL := 2
PAPERMILL := $(PY) -m papermill --log-output --execution-timeout $(TIMEOUT) --cwd notebooks -k python3

# Run names: tiny Shakespeare keeps the plain names; another DATASET gets its own runs by default.
RUN_SUFFIX := $(if $(filter tinyshakespeare,$(DATASET)),,-$(DATASET))
RUN ?= stateless$(RUN_SUFFIX)# stateless run name (notebook 02)
SRUN ?= stateful$(RUN_SUFFIX)# stateful run name (notebook 03)
GEN_RUN ?= $(OUT)/runs/$(SRUN)
PROMPT ?= ROMEO:
NCHARS ?= 500
TEMPERATURE ?= 0.8
# Optional overrides (empty: the notebook's default): CORPUS, MIN_COUNT, MAX_VOCAB for notebook 01;
# EPOCHS, STEPS, UNITS, SEED, EMBEDDING (auto, None or an int), LR for 02 and 03; STREAMS for 03.
param = $(if $(2),-p $(1) $(2))
TRAIN_PARAMS = -p dataset_name $(DATASET) $(call param,epochs,$(EPOCHS)) \
	$(call param,steps_per_epoch,$(STEPS)) $(call param,units,$(UNITS)) $(call param,seed,$(SEED)) \
	$(call param,embedding_dim,$(EMBEDDING)) $(call param,learning_rate,$(LR))
CHINESE_CORPUS ?= ../shared/data/shijing.txt# the large-alphabet rows of `make bench` (skipped if absent)

.DEFAULT_GOAL := help
.PHONY: help setup fonts data train-stateless train-stateful generate test lint bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'
	@echo "  variables: RUN SRUN DATASET CORPUS MIN_COUNT MAX_VOCAB EPOCHS STEPS UNITS SEED EMBEDDING LR STREAMS"
	@echo "             TIMEOUT GEN_RUN PROMPT NCHARS TEMPERATURE CHINESE_CORPUS"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(STAMP) ## create .venv and install the package with its dev tools

fonts: ## a CJK font for charts of Chinese/Japanese/Korean text (Debian/Ubuntu, as root); else U+XXXX labels
	apt-get update -qq && apt-get install -y -qq fonts-noto-cjk

define PREPARE_DATA
	mkdir -p $(DATA_DIR)
	$(PAPERMILL) notebooks/01_data_prep.ipynb $(DATA_DIR)/01_data_prep.ipynb \
		-p dataset_name $(DATASET) $(call param,corpus_path,$(abspath $(CORPUS))) \
		$(call param,min_count,$(MIN_COUNT)) $(call param,max_vocab,$(MAX_VOCAB))
endef

$(DATA_DIR)/meta.json: | $(STAMP)
	$(PREPARE_DATA)

data: $(STAMP) ## notebook 01: tokenize and split the corpus into outputs/data/<dataset>/ (CORPUS=path for your own text)
	$(PREPARE_DATA)

train-stateless: $(DATA_DIR)/meta.json | $(STAMP) ## notebook 02: stateless GRU on shuffled windows into outputs/runs/$(RUN)/
	mkdir -p $(OUT)/runs/$(RUN)
	$(PAPERMILL) notebooks/02_train_stateless.ipynb $(OUT)/runs/$(RUN)/02_train_stateless.ipynb \
		-p run_name $(RUN) $(TRAIN_PARAMS)

train-stateful: $(DATA_DIR)/meta.json | $(STAMP) ## the main job, notebook 03: stateful GRU on parallel streams into outputs/runs/$(SRUN)/
	mkdir -p $(OUT)/runs/$(SRUN)
	$(PAPERMILL) notebooks/03_train_stateful.ipynb $(OUT)/runs/$(SRUN)/03_train_stateful.ipynb \
		-p run_name $(SRUN) -p compare_with $(RUN) $(TRAIN_PARAMS) $(call param,batch_size,$(STREAMS))

generate: $(STAMP) ## sample text from a finished run (GEN_RUN, PROMPT, NCHARS, TEMPERATURE)
	$(PY) -m charrnn generate --run $(GEN_RUN) --prompt "$(PROMPT)" --n-chars $(NCHARS) \
		--temperature $(TEMPERATURE)

test: $(STAMP) ## unit tests and every notebook through papermill on tiny parameters
	$(PY) -m pytest

lint: $(STAMP) ## ruff
	$(VENV)/bin/ruff check .

bench: $(STAMP) ## benchmarks against the seed's approach; table on stdout, JSON in outputs/bench/
	$(PY) -m charrnn.bench $(if $(wildcard $(CHINESE_CORPUS)),--chinese-corpus $(CHINESE_CORPUS))

clean: ## remove generated outputs (keeps .venv and the cached corpus)
	find $(OUT) -mindepth 1 -maxdepth 1 ! -name README.md ! -name data -exec rm -rf {} +
	find $(OUT)/data -mindepth 1 -maxdepth 1 ! -name raw -exec rm -rf {} + 2>/dev/null || true
	rm -rf .pytest_cache .ruff_cache
