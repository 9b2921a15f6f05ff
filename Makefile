# The two set-up commands of the README. Both create .venv and install the pinned stack first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXTRAS := $(VENV)/.extras

.PHONY: demo test lint style install clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24"
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

# The optional extras (Stable-Baselines3, Weights & Biases, imitation), for the tests that cover them.
$(EXTRAS): $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev,sb3,wandb,imitation]"
	touch $(EXTRAS)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m trex.study -c configs/quickstart.yaml

style: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

lint: style
	$(BIN)/mypy

# Every test process runs torch on one thread (tests/conftest.py), so the suite spreads over the cores, whole files
# per worker (a module's fixtures are built once), the slowest files first (tests/conftest.py: SLOWEST_FILES).
# mypy (one core, about 35 s from a fresh clone) runs beside the suite, in the cores' idle moments; its output
# follows the suite's, and either failing fails the target.
test: $(EXTRAS) style
	$(BIN)/mypy > $(VENV)/mypy.log 2>&1 & mypy=$$!; \
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile --no-loadscope-reorder --durations=15; \
	tests=$$?; wait $$mypy; typed=$$?; cat $(VENV)/mypy.log; test $$tests -eq 0 && test $$typed -eq 0

clean:
	rm -rf $(VENV) *.egg-info
