# Two entry points (see README):  `make pipeline`  runs the whole workflow;  `make test`  runs the tests
# (`make benchmarks`: speed and memory, benchmarks/README.md).
# Both create the environment from the project's own files first (.venv, from pyproject.toml).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CORES  ?= all

.PHONY: env pipeline test benchmarks report clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned, so that no dependency can pull another (CUDA) build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

env: $(BIN)/.installed

pipeline: env
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --cores $(CORES) --workflow-profile workflow/profiles/default
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --cores 1 --report results/report.html

test: env
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

# Speed and memory, each stage side by side with the obvious alternative (benchmarks/README.md).
benchmarks: env
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/run_all

clean:
	rm -rf results/* resources logs .snakemake
