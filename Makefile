# charrnn — `make` or `make help` lists the targets.
# Every notebook runs headlessly through papermill on the project's own .venv kernel.
# Training options live in one place, TrainConfig (charrnn/config.py); a preset overlays it. Every
# variable given on the command line that names an option (EPOCHS=3, TENSORBOARD=1, CELL=lstm, or a
# short name: STEPS LR MINUTES EMBEDDING GRU STREAMS) reaches notebooks 02/03 as `overrides`.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUT ?= $(or $(CHARRNN_OUTPUTS),outputs)# where every target writes; the notebooks and the CLI get it too
override CHARRNN_OUTPUTS := $(abspath $(OUT))
export CHARRNN_OUTPUTS
DATASET ?= tinyshakespeare
DATA_DIR := $(OUT)/data/$(DATASET)
TIMEOUT ?= 7200# seconds per notebook cell; TIMEOUT=-1 for runs longer than 2 hours
export TF_CPP_MIN_LOG_LEVEL ?= 3# hides TensorFlow's C++ start-up logs (cuInit errors); 0 shows them

# Run names: tiny Shakespeare keeps the plain names; another DATASET gets its own runs by default.
RUN_SUFFIX := $(if $(filter tinyshakespeare,$(DATASET)),,-$(DATASET))
RUN ?= stateless$(RUN_SUFFIX)# stateless run name (notebook 02)
SRUN ?= stateful$(RUN_SUFFIX)# stateful run name (notebook 03)
GEN_RUN ?= $(OUT)/runs/$(SRUN)
INSPECT_RUN ?= $(OUT)/runs/$(SRUN)# the finished run notebook 05 opens up (make inspect)
PROMPT ?= ROMEO:
NCHARS ?= 500
TEMPERATURE ?= 0.8
# Read by `make generate` from the environment, as typed: $(value) keeps make from expanding a `$(...)` in them.
override PROMPT := $(value PROMPT)
export GEN_RUN PROMPT NCHARS TEMPERATURE
PRESET ?= geron# training recipe: configs/$(PRESET).yaml over TrainConfig's defaults (geron: the reference's)
# Notebook 01 takes CORPUS, MIN_COUNT, MAX_VOCAB and FORCE=1 (replace a dataset that runs depend on).
# What a user types reaches a program as data: recipes read it from the environment as "$$NAME",
# which the shell substitutes once and never re-parses (quotes, backticks and $(...) stay text).
export DATASET RUN SRUN PRESET MIN_COUNT MAX_VOCAB
export CORPUS_PATH := $(if $(CORPUS),$(abspath $(CORPUS)))
export INSPECT_RUN_DIR := $(abspath $(INSPECT_RUN))
env_param = $(if $($(2)),-p $(1) "$$$(2)")
CMDLINE_VARS := $(foreach v,$(.VARIABLES),$(if $(filter command line,$(origin $(v))),$(v)))
# The options as JSON, read by Python from the environment: values are never re-parsed by a shell.
TRAIN_PARAMS = -r preset "$$PRESET" -r dataset_name "$$DATASET" -p verbose 2 \
	-y "overrides: $$($(PY) -m charrnn.config $(CMDLINE_VARS))"
CHINESE_CORPUS ?= ../shared/data/shijing.txt# the large-alphabet rows of `make bench` (skipped if absent)
PEER_CORPUS ?= ../shared/data/tangshi.txt# make bench-peer: the text, the recipe, the minutes of each side
PEER_PRESET ?= fast
PEER_MINUTES ?= 10

# RUN, SRUN and DATASET name folders under $(OUT): refuse anything else before a target creates one.
bad_name = $(if $(or $(findstring /,$(1)),$(filter .%,$(1)),$(word 2,$(1)),$(if $(strip $(1)),,empty)),bad)
$(foreach name,DATASET RUN SRUN,$(if $(call bad_name,$($(name))),$(error $(name)='$($(name))' is not \
	a plain folder name: use letters, digits, '-' or '_', with no '/' and no leading '.')))

# $(call notebook,notebook,executed,parameters): charrnn.jobs runs it through papermill into a
# temporary name that replaces `executed` only on success; a failed or stopped run's notebook is
# kept as <name>.failed.ipynb, an error in a cell is one line. `exec`: the SIGTERM make passes to
# its recipe, or a Ctrl-C, reaches the job, which stops its kernel too (no shell left waiting).
define notebook
	exec $(PY) -m charrnn.jobs $(1) $(2) --timeout $(TIMEOUT) -r outputs_dir "$$CHARRNN_OUTPUTS" $(strip $(3))
endef
# A preset is a file: a typo stops before a run folder is created.
check_preset = $(if $(wildcard configs/$(PRESET).yaml),,$(error PRESET=$(PRESET) is not a preset: \
	choose one of $(basename $(notdir $(wildcard configs/*.yaml))) (configs/<name>.yaml)))

.DEFAULT_GOAL := help
.PHONY: help setup native fonts data train-stateless train-stateful generate inspect reproduce test test-distributed test-signals kill-test lint bench bench-quality bench-peer clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'
	@echo "  variables: PRESET=$(PRESET) DATASET=$(DATASET) RUN=$(RUN) SRUN=$(SRUN) OUT=$(OUT)"
	@echo "             CORPUS MIN_COUNT MAX_VOCAB FORCE (make data); GEN_RUN PROMPT NCHARS TEMPERATURE (generate); INSPECT_RUN"
	@echo "             any training option in capitals (EPOCHS UNITS CELL SEED TENSORBOARD STRATEGY REPLICAS ...)"
	@echo "             or a short name: STEPS LR MINUTES EMBEDDING GRU STREAMS; TIMEOUT KILLS MODE BUDGETS PRESETS CASED"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(STAMP) ## create .venv and install the package with its dev tools
	@$(PY) -m charrnn.extras.cpp_loop || true  # builds the compiled step loop now; without a C++ compiler, says so

native: $(STAMP) ## build the Generator's compiled step loop (charrnn/extras/csrc; needs a C++ compiler)
	$(PY) -m charrnn.extras.cpp_loop

fonts: ## a CJK font for charts of Chinese/Japanese/Korean text (Debian/Ubuntu, as root); else U+XXXX labels
	apt-get update -qq && apt-get install -y -qq fonts-noto-cjk

define PREPARE_DATA
	mkdir -p $(DATA_DIR)
	$(call notebook,notebooks/01_data_prep.ipynb,$(DATA_DIR)/01_data_prep.ipynb,\
		-r dataset_name "$$DATASET" $(if $(CORPUS),-r corpus_path "$$CORPUS_PATH") \
		$(call env_param,min_count,MIN_COUNT) $(call env_param,max_vocab,MAX_VOCAB) $(if $(FORCE),-p force True))
endef

$(DATA_DIR)/meta.json: | $(STAMP)
	$(PREPARE_DATA)

data: $(STAMP) ## notebook 01: tokenize and split the corpus into outputs/data/<dataset>/ (CORPUS=path for your own text)
	$(PREPARE_DATA)

train-stateless: $(DATA_DIR)/meta.json | $(STAMP) ## notebook 02: stateless GRU on shuffled windows into outputs/runs/<RUN>/
	$(check_preset)mkdir -p $(OUT)/runs/$(RUN)
	$(call notebook,notebooks/02_train_stateless.ipynb,$(OUT)/runs/$(RUN)/02_train_stateless.ipynb,\
		-r run_name "$$RUN" $(TRAIN_PARAMS))

train-stateful: $(DATA_DIR)/meta.json | $(STAMP) ## the main job, notebook 03: stateful GRU on parallel streams into outputs/runs/<SRUN>/
	$(check_preset)mkdir -p $(OUT)/runs/$(SRUN)
	$(call notebook,notebooks/03_train_stateful.ipynb,$(OUT)/runs/$(SRUN)/03_train_stateful.ipynb,\
		-r run_name "$$SRUN" -r compare_with "$$RUN" $(TRAIN_PARAMS))

generate: $(STAMP) ## sample text from a finished run (GEN_RUN, PROMPT, NCHARS, TEMPERATURE)
	$(PY) -m charrnn generate --run "$$GEN_RUN" --prompt "$$PROMPT" --n-chars "$$NCHARS" \
		--temperature "$$TEMPERATURE"  # the values from the environment: never re-parsed by the shell

inspect: $(STAMP) ## notebook 05 on INSPECT_RUN: surprisal, units, gates, n-gram baselines into <run>/inspect/
	$(call notebook,notebooks/05_inspect.ipynb,$(INSPECT_RUN)/05_inspect.ipynb,-r run_dir "$$INSPECT_RUN_DIR")

reproduce: $(STAMP) ## re-run outputs/runs/<RUN> from its records into RUN-reproduced; compare the histories
	$(PY) -m charrnn.reproduce --run $(RUN) --outputs $(OUT)

test: $(STAMP) ## unit tests and every notebook through papermill on tiny parameters (2 processes)
	$(PY) -m pytest -n 2 --dist loadfile

test-distributed: $(STAMP) ## mirrored (2 logical CPUs) and 2-process multi-worker training vs one device
	$(PY) -m pytest -m distributed

test-signals: $(STAMP) ## Ctrl-C, kill and a closed terminal stop a job and its kernel at every process level; reruns resume
	$(PY) -m pytest -m signals

KILLS ?= 20# kill-test: SIGKILLs per mode
kill-test: $(STAMP) ## SIGKILL a tiny training notebook KILLS times (MODE=stateless|stateful, default both); resumed = uninterrupted?
	$(PY) tests/kill_anywhere.py --kills $(KILLS) $(if $(MODE),--mode $(MODE))

lint: $(STAMP) ## ruff
	$(VENV)/bin/ruff check .

BUDGETS ?= 10 20# bench-quality: training minutes per preset
bench-quality: $(STAMP) ## validation loss each preset reaches in BUDGETS minutes (PRESETS, CELLS, CASED=1, CORPUS); outputs/bench/quality.json
	$(PY) -m charrnn.bench_quality --budgets $(BUDGETS) $(if $(PRESETS),--presets $(PRESETS)) $(if $(CELLS),--cells $(CELLS)) \
		$(if $(CASED),--cased) $(if $(CORPUS),--corpus "$$CORPUS_PATH") --out $(OUT)/bench/quality.json

bench: $(STAMP) ## benchmarks against the reference's own code; table on stdout, JSON in outputs/bench/, docs/benchmarks.md
	$(PY) -m charrnn.bench $(if $(wildcard $(CHINESE_CORPUS)),--chinese-corpus $(CHINESE_CORPUS))

bench-peer: $(STAMP) ## PEER_PRESET beside a plain PyTorch port on PEER_CORPUS, PEER_MINUTES each; docs/peer.md
	$(PY) -m charrnn.bench_peer --corpus $(PEER_CORPUS) --preset $(PEER_PRESET) --minutes $(PEER_MINUTES) \
		--out $(OUT)/bench/peer.json

clean: ## remove generated outputs (keeps .venv and the cached corpus)
	find $(OUT) -mindepth 1 -maxdepth 1 ! -name README.md ! -name data -exec rm -rf {} +
	find $(OUT)/data -mindepth 1 -maxdepth 1 ! -name raw -exec rm -rf {} + 2>/dev/null || true
	rm -rf .pytest_cache .ruff_cache
