# The course's routine tasks. `make lab` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
READY  := $(VENV)/.installed
# Extra arguments for JupyterLab, e.g. make lab LAB_ARGS="--no-browser --port 8899"
LAB_ARGS ?=
# Jupyter refuses to run as root (containers, some cloud machines) unless told it may.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: setup lab test lessons notebooks bench clean

# The virtual environment, (re)installed when pyproject.toml or constraints.txt change.
$(READY): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev,cluster]"
	touch $(READY)

setup: $(READY)

## lab: set up, then open the course in JupyterLab on lessons/
lab: setup
	$(BIN)/jupyter lab --ServerApp.root_dir=lessons $(ROOT_FLAG) $(LAB_ARGS)

## test: set up, then run every test
test: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

## notebooks: stamp the instructor notebooks (badge, set-up cell, test cells) from the catalogue
notebooks: setup
	$(BIN)/python -m autograder.build

## lessons: stamp, then regenerate the student editions in lessons/ with nbgrader
lessons: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m autograder.build lessons

## bench: reference / built-in speed ratios and notebook run times, measured in one run
bench: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build
