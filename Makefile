# The only entry point. `make help` lists the targets.
#   make all                 create .venv if missing, build the data, run every notebook, publish reports/
#   make all CONFIG=small    the same on the small parameter set (config/small.yaml)
#   make test                the test suite (what CI runs); installs Debian's chromium for the browser test if missing
# Every step writes its output atomically; a failed notebook is kept as build/<config>/NN.failed.ipynb.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
.SUFFIXES:
MAKEFLAGS += --no-builtin-rules --no-print-directory

CONFIG ?= default
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
# notebooks at a time in `make all`, test workers in `make test`
JOBS ?= 2
# BLAS / OpenMP / numba / rayon threads of each notebook kernel and test worker: the machine's cores
# shared among the JOBS that run at once. Two kernels with two OpenBLAS threads each on two cores spin
# against each other (make all CONFIG=asif: 46 min on 2026-12-03, 28 min the day before; bench/README.md, "Threads").
# `make all THREADS=2` or a *_NUM_THREADS already in the environment overrides it. The variables are
# not exported: $(THREAD_ENV) puts them on the commands that run kernels and workers, so `all`'s
# sub-make does not take this make's values for the caller's.
NPROC := $(shell nproc 2>/dev/null || echo 1)
THREADS ?= $(shell n=$$(( $(NPROC) / $(JOBS) )); echo $$(( n > 0 ? n : 1 )))
OMP_NUM_THREADS ?= $(THREADS)
OPENBLAS_NUM_THREADS ?= $(THREADS)
MKL_NUM_THREADS ?= $(THREADS)
NUMBA_NUM_THREADS ?= $(THREADS)
RAYON_NUM_THREADS ?= $(THREADS)
THREAD_ENV = OMP_NUM_THREADS=$(OMP_NUM_THREADS) OPENBLAS_NUM_THREADS=$(OPENBLAS_NUM_THREADS) MKL_NUM_THREADS=$(MKL_NUM_THREADS) \
	NUMBA_NUM_THREADS=$(NUMBA_NUM_THREADS) RAYON_NUM_THREADS=$(RAYON_NUM_THREADS)
# the browser of the browser test (tests/test_pipeline.py); `make browser` installs Debian's when missing
CHROMIUM ?= /usr/bin/chromium

export ANALYSIS_ROOT := $(CURDIR)
export PYTHONPATH := $(CURDIR)/src
export PATH := $(BIN):$(PATH)
export PYDEVD_DISABLE_FILE_VALIDATION := 1
export JUPYTER_PLATFORM_DIRS := 1

ENV_STAMP := $(VENV)/.installed
DATA_DIR := data/processed/$(CONFIG)
BUILD_DIR := build/$(CONFIG)
PANEL := $(DATA_DIR)/panel.parquet
PANEL_TFP := $(DATA_DIR)/panel_tfp.parquet
# one stamp per parameter section, rewritten only when that section changes (tools/stamps.py)
SECTIONS := seed data world tfp did robustness descriptives
STAMP := $(BUILD_DIR)/params
PARAM_STAMPS := $(addprefix $(STAMP)/,$(addsuffix .json,$(SECTIONS)))
WORLD_PARAMS := $(STAMP)/seed.json $(STAMP)/data.json $(STAMP)/world.json
EXTERNAL := $(wildcard data/external/*.csv)
REPORT_STAMP := reports/.config
EXAMPLE_DIR := data/example
EXAMPLE_STAMP := $(EXAMPLE_DIR)/.written
# the user's files: a change to any of them rebuilds the panel
RAW_FILES := $(shell find data/raw $(EXAMPLE_DIR) -type f ! -name '.*' ! -name README.md 2>/dev/null)
RUN_NOTEBOOK := tools/run_notebook.py

# notebooks run once on the parameter set; 04_effects and 06_robustness run once per outcome family
SIMPLE_NOTEBOOKS := $(notdir $(basename $(filter-out notebooks/04_effects.ipynb notebooks/05_summary.ipynb notebooks/06_robustness.ipynb notebooks/07_validation.ipynb,$(wildcard notebooks/[0-9][0-9]_*.ipynb))))
# the outcome families. Those whose pages read no TFP column (tools/families.py: emissions and
# innovation by default) read the built panel and run beside 03_productivity; the others wait for
# the panel with TFP. Without .venv (`make all` creates it before it runs the notebooks), or with a
# parameter set it cannot read (the stamps step then says why), every family waits. Families that
# wait come first, so that make starts the longest chain (03, then their effects and robustness
# pages) as early as it can.
FAMILIES_ALL := $(patsubst config/effects_%.yaml,%,$(wildcard config/effects_*.yaml))
FAMILIES_WITHOUT_TFP := $(if $(wildcard $(BIN)/python),$(shell ANALYSIS_ROOT=$(CURDIR) PYTHONPATH=$(CURDIR)/src $(BIN)/python tools/families.py $(CONFIG) 2>/dev/null))
FAMILIES := $(filter-out $(FAMILIES_WITHOUT_TFP),$(FAMILIES_ALL)) $(filter $(FAMILIES_WITHOUT_TFP),$(FAMILIES_ALL))
# the panel file a family's pages read
family_panel = $(if $(filter $(1),$(FAMILIES_WITHOUT_TFP)),$(PANEL),$(PANEL_TFP))
EFFECTS := $(if $(wildcard notebooks/04_effects.ipynb),$(addprefix effects_,$(FAMILIES)))
SUMMARY := $(if $(wildcard notebooks/05_summary.ipynb),summary)
ROBUSTNESS := $(if $(wildcard notebooks/06_robustness.ipynb),$(addprefix robustness_,$(FAMILIES)))
VALIDATION := $(if $(wildcard notebooks/07_validation.ipynb),validation)
PAGES := $(SIMPLE_NOTEBOOKS) $(EFFECTS) $(SUMMARY) $(ROBUSTNESS) $(VALIDATION)
EXECUTED := $(addprefix $(BUILD_DIR)/,$(addsuffix .ipynb,$(PAGES)))
HTML := $(addprefix reports/,$(addsuffix .html,$(PAGES)))

.PHONY: all env data example-data notebooks reports test test-slow browser bench lab clean clean-all help lock validation clean-validation FORCE
.DEFAULT_GOAL := all

# the notebooks run JOBS at a time (make's own -j is set here, so `make all` is enough; JOBS=1: one at a time)
# (the environment first, so that the sub-make can ask tools/families.py which pages need no TFP)
all: $(ENV_STAMP) ## create the environment if missing, build the data, run the notebooks (JOBS at a time, default 2), publish reports/
	@$(MAKE) --jobs=$(JOBS) reports

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | awk -F'\t' '{printf "  %-12s %s\n", $$1, $$2}'
	@echo "  variables: CONFIG=$(CONFIG) (parameter set in config/), VENV=$(VENV), JOBS=$(JOBS), THREADS=$(THREADS) (BLAS threads per job), CHROMIUM=$(CHROMIUM)"

# ---------------------------------------------------------------------------------------------
# environment: .venv from the exact pins of requirements.lock (no conda needed)
env: $(ENV_STAMP) ## create .venv from requirements.lock (only if missing or the lock changed)

$(ENV_STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

lock: ## re-resolve the dependencies and rewrite requirements.lock and environment.yml
	rm -rf build/lockenv && $(PYTHON) -m venv build/lockenv
	build/lockenv/bin/python -m pip install --quiet '.[notebooks,dev,bench]'
	build/lockenv/bin/python -m pip freeze --exclude-editable | grep -v '^analysis' > requirements.lock.tmp
	mv requirements.lock.tmp requirements.lock
	$(PYTHON) tools/write_environment.py requirements.lock environment.yml
	rm -rf build/lockenv

# ---------------------------------------------------------------------------------------------
# data: the validated panel of the parameter set (synthetic world or data/raw)
data: $(PANEL) ## build data/processed/<CONFIG>/panel.parquet

$(PARAM_STAMPS) &: config/default.yaml config/$(CONFIG).yaml FORCE | $(ENV_STAMP)
	@python tools/stamps.py $(CONFIG) $(STAMP)

$(PANEL): $(ENV_STAMP) $(WORLD_PARAMS) $(EXTERNAL) $(RAW_FILES) $(shell $(PYTHON) tools/deps.py --modules analysis.panel 2>/dev/null)
	$(THREAD_ENV) python -m analysis.panel --config $(CONFIG)

# the worked example of the real-data path: the default world written as raw firm files (GBK CSVs,
# Chinese headers ...) into data/example/ (git-ignored), read back by config/example_raw.yaml
example-data: $(EXAMPLE_STAMP) ## write the synthetic world as raw firm files to data/example/ (for CONFIG=example_raw)

$(EXAMPLE_STAMP): $(ENV_STAMP) config/default.yaml $(shell $(PYTHON) tools/deps.py --modules analysis.example_firms 2>/dev/null)
	python -m analysis.example_firms --config default --out $(EXAMPLE_DIR)

ifeq ($(CONFIG),example_raw)
$(PANEL): $(EXAMPLE_STAMP)
endif

# ---------------------------------------------------------------------------------------------
# notebooks: executed by papermill into a temporary file, moved into build/ only on success
notebooks: $(EXECUTED) ## execute every notebook into build/<CONFIG>/

build/deps.mk: tools/deps.py $(wildcard notebooks/*.ipynb) $(shell find src/analysis -name '*.py' 2>/dev/null)
	@mkdir -p $(@D)
	$(PYTHON) tools/deps.py $(wildcard notebooks/[0-9][0-9]_*.ipynb) > $@.tmp && mv $@.tmp $@

-include build/deps.mk

# $(1): notebook, $(2): parameter file, $(3): extra papermill arguments.
# tools/run_notebook.py runs papermill with only the parameters the notebook declares and stores the
# files it read (with their hashes) in the executed notebook, for the page's provenance footer.
# Progress bars are for people in JupyterLab; in the published reports they are noise (TQDM_DISABLE).
# The log gets instead one line a minute (cell, kernel memory, loop positions) and, if the kernel dies
# for lack of memory, where it was, how much it had reached and which parameters lower it; the
# time and peak memory of each run go to build/<config>/NN.stats.json.
define papermill
	@mkdir -p $(@D)
	@rm -f $@ $(basename $@).failed.ipynb
	@echo "papermill $(1) -> $@"
	@if TQDM_DISABLE=1 $(THREAD_ENV) python $(RUN_NOTEBOOK) $(1) $@.tmp.ipynb -k python3 --cwd notebooks -f $(2) -p config $(CONFIG) $(3) \
	      --stats $(basename $@).stats.json > $(basename $@).log 2>&1; then \
	    mv $@.tmp.ipynb $@; \
	else \
	    mv $@.tmp.ipynb $(basename $@).failed.ipynb 2>/dev/null || true; \
	    echo "FAILED: $(1) (executed copy kept in $(basename $@).failed.ipynb, log in $(basename $@).log)" >&2; \
	    grep -v '^\s*$$' $(basename $@).log | tail -25 >&2; \
	    exit 1; \
	fi
endef

.SECONDEXPANSION:
$(BUILD_DIR)/01_data.ipynb: $(WORLD_PARAMS)
$(BUILD_DIR)/02_descriptives.ipynb: $(STAMP)/descriptives.json

$(BUILD_DIR)/%.ipynb: notebooks/%.ipynb $(PANEL) $$(NB_DEPS_$$*) $(RUN_NOTEBOOK) | $(ENV_STAMP)
	$(call papermill,$<,config/$(CONFIG).yaml,)

$(BUILD_DIR)/03_productivity.ipynb $(PANEL_TFP) &: notebooks/03_productivity.ipynb $(PANEL) $(STAMP)/tfp.json $(NB_DEPS_03_productivity) $(RUN_NOTEBOOK) | $(ENV_STAMP)
	$(call papermill,$<,config/$(CONFIG).yaml,)

$(BUILD_DIR)/effects_%.ipynb: notebooks/04_effects.ipynb config/effects_%.yaml $$(call family_panel,$$*) $(STAMP)/did.json $(NB_DEPS_04_effects) $(RUN_NOTEBOOK) | $(ENV_STAMP)
	$(call papermill,$<,config/effects_$*.yaml,-p family $*)

# robustness after the family's effects report (whose HonestDiD results it reads back from the cache).
# A family without TFP still runs it after 03_productivity (order only: a TFP change does not re-run
# it): make gives a free job slot to the first page it found ready while none was free, and a
# robustness page taking 03's slot would hold back the effects page of productivity, the longest chain
$(BUILD_DIR)/robustness_%.ipynb: notebooks/06_robustness.ipynb config/effects_%.yaml $(BUILD_DIR)/effects_%.ipynb $$(call family_panel,$$*) $(STAMP)/data.json $(STAMP)/did.json $(STAMP)/robustness.json $(NB_DEPS_06_robustness) $(RUN_NOTEBOOK) | $(ENV_STAMP) $(PANEL_TFP)
	$(call papermill,$<,config/effects_$*.yaml,-p family $*)

$(BUILD_DIR)/summary.ipynb: notebooks/05_summary.ipynb $(addprefix $(BUILD_DIR)/,$(addsuffix .ipynb,$(EFFECTS))) $(STAMP)/did.json $(NB_DEPS_05_summary) $(RUN_NOTEBOOK) | $(ENV_STAMP)
	$(call papermill,$<,config/$(CONFIG).yaml,)

# ---------------------------------------------------------------------------------------------
# Monte Carlo validation (analysis.montecarlo, config/validation.yaml). Not part of `make all`: the
# validation page shows the stored results of the last `make validation` run if there are any (the
# store's run.json is a prerequisite, so a new run rebuilds the page), else a tiny run, and says which.
#   make validation R=200 [DESIGNS=clean,dynamic] [CLUSTER=local|slurm|pbs|tcp://host:8786] [WORKERS=n]
MC_STORE := data/montecarlo/validation
R ?=
DESIGNS ?=
CLUSTER ?=
WORKERS ?=
MC_ARGS := $(if $(R),-R $(R)) $(if $(DESIGNS),--designs $(DESIGNS)) $(if $(CLUSTER),--cluster $(CLUSTER)) $(if $(WORKERS),--workers $(WORKERS))

validation: $(ENV_STAMP) ## Monte Carlo validation: R=200 DESIGNS=a,b CLUSTER=local|slurm|pbs|address WORKERS=n (resumes), then its page
	$(THREAD_ENV) python -m analysis.montecarlo $(MC_ARGS)
	$(THREAD_ENV) python -m analysis.montecarlo --parallel-trends -R 100 $(if $(DESIGNS),--designs $(DESIGNS)) $(if $(CLUSTER),--cluster $(CLUSTER)) $(if $(WORKERS),--workers $(WORKERS))
	$(MAKE) reports/validation.html

clean-validation: ## remove the stored Monte Carlo results (make clean keeps them)
	rm -rf $(MC_STORE)

$(BUILD_DIR)/validation.ipynb: notebooks/07_validation.ipynb config/validation.yaml $(wildcard $(MC_STORE)/run.json $(MC_STORE)/imputation_decomposition.parquet $(MC_STORE)/parallel_trends.parquet) $(NB_DEPS_07_validation) $(RUN_NOTEBOOK) | $(ENV_STAMP)
	$(call papermill,$<,config/$(CONFIG).yaml,)

# ---------------------------------------------------------------------------------------------
# reports: one HTML page per executed notebook, the index, provenance on every page
reports: reports/index.html ## publish reports/ (HTML pages, tables/, figures/, index.html)

$(REPORT_STAMP): FORCE
	@mkdir -p $(@D)
	@if [ "$$(cat $@ 2>/dev/null)" != "$(CONFIG)" ]; then echo "$(CONFIG)" > $@; fi

reports/%.html: $(BUILD_DIR)/%.ipynb $(REPORT_STAMP) src/analysis/report.py $(wildcard src/analysis/templates/report/*) | $(ENV_STAMP)
	python -m analysis.report page $< $@ --config $(CONFIG)

reports/index.html: $(HTML) src/analysis/report.py | $(ENV_STAMP)
	python -m analysis.report index --config $(CONFIG) --pages $(PAGES)

# ---------------------------------------------------------------------------------------------
test: $(ENV_STAMP) browser ## lint (ruff, configured in pyproject.toml), then the test suite (not the slow Monte Carlo tests)
	python -m ruff check src tests tools bench notebooks
	CHROMIUM=$(CHROMIUM) $(THREAD_ENV) python -m pytest -m "not slow" -n $(JOBS) --dist loadgroup -rs --doctest-modules src/analysis tests

# Debian's chromium for the browser test: installed with apt when missing and we are root. Otherwise one
# line says what to run and the browser test is skipped with that reason; under CI (CI=true) it fails.
browser: ## install Debian's chromium for the browser test if it is missing (as root, with apt)
	@if [ -x "$(CHROMIUM)" ]; then exit 0; fi; \
	if [ "$(CHROMIUM)" = /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser test (apt-get install chromium)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || true; \
	fi; \
	if [ -x "$(CHROMIUM)" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then how="install Chromium, then make test CHROMIUM=/path/to/chromium"; \
	elif [ "$$(id -u)" = 0 ]; then how="apt-get update && apt-get install chromium"; else how="sudo apt-get install chromium"; fi; \
	if [ "$${CI:-}" = true ]; then \
	    echo "error: $(CHROMIUM) is missing and CI=true, so the browser test cannot be skipped; run: $$how" >&2; exit 1; \
	fi; \
	echo "browser test will be skipped: $(CHROMIUM) is missing; to run it: $$how"

test-slow: $(ENV_STAMP) ## run only the slow Monte Carlo tests
	python -m pytest -m slow tests

bench: $(ENV_STAMP) ## speed and memory against peer libraries (bench/README.md)
	@for b in bench/*.py; do echo "== $$b"; python $$b; done

lab: $(ENV_STAMP) ## open JupyterLab on the project's kernel
	jupyter lab --notebook-dir=$(CURDIR)

clean: ## remove built data, executed notebooks and reports (keeps .venv and data/raw)
	rm -rf build data/interim/* data/processed/* reports $(EXAMPLE_DIR)
	@touch data/interim/.gitkeep data/processed/.gitkeep

clean-all: clean ## also remove .venv
	rm -rf $(VENV)
