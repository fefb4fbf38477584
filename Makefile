PYTHON ?= python3
PIP_TORCH ?= torch==2.13.0

.PHONY: install test train bench

# Installs the package with its dev extras (the CPU build of torch first, taken from this machine's disk).
install:
	$(PYTHON) -m pip install -q "$(PIP_TORCH)" || true
	$(PYTHON) -m pip install -q -e ".[dev]"

# Installs, then runs the test suite (what .ci/run runs).
test: install
	$(PYTHON) -m pytest -q

# Installs, then runs the main job: SOLSA on JapaneseVowels (ships with aeon, no download).
train: install
	solsa train --out runs/main --force
