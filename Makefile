# The course's routine tasks. `make lab` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
READY  := $(VENV)/.installed
# Extra arguments for JupyterLab, e.g. make lab LAB_ARGS="--no-browser --port 8899"
LAB_ARGS ?=
# The folder JupyterLab opens (the browser test serves a scratch copy of the notebooks)
LAB_ROOT ?= lessons
# Jupyter refuses to run as root (containers, some cloud machines) unless told it may.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: setup lab test lessons notebooks bench gpu-check clean

# The virtual environment, (re)installed when pyproject.toml or constraints.txt change.
# PYTHONWARNINGS hides the notice setuptools prints on every editable install ("be careful with
# folders ... with the same name as your package"); nothing else is silenced.
$(READY): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install -q -c constraints.txt -e ".[dev,cluster]"
	touch $(READY)

setup: $(READY)

## lab: set up, then open the course in JupyterLab on lessons/ (the learner's lab: nbgrader's
## instructor panels are off there, see autograder/lab_config; Validate and Assignments stay)
lab: setup
	JUPYTER_CONFIG_PATH="$(CURDIR)/autograder/lab_config" $(BIN)/jupyter lab --ServerApp.root_dir=$(LAB_ROOT) --LabApp.expose_app_in_browser=True $(ROOT_FLAG) $(LAB_ARGS)

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

## gpu-check: the CUDA tests (tests/test_gpu_*.py) on a GPU machine's own PyTorch and pytest, no venv:
## minidl's references on cuda against the CPU and the built-ins, grading and timing of CUDA cases,
## float16 autocast with the loss scalers, checkpoint resume with the CUDA RNG, torchrun on NCCL, and
## lessons 01-08's minidl calls on cuda. Fails at once where no GPU is visible.
GPU_PYTHON ?= python3
gpu-check:
	@$(GPU_PYTHON) -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'gpu-check: $(GPU_PYTHON) sees no CUDA GPU (torch ' + torch.__version__ + ')')"
	PYTHONPATH=. $(GPU_PYTHON) -m pytest -m cuda -v tests/test_gpu_*.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build
