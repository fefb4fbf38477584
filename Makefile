PYTHON ?= python3
PIP_TORCH ?= torch==2.13.0

.PHONY: install test train bench

# Installs the package with its dev and interop extras (the CPU build of torch first, taken from this
# machine's disk). Norse goes in without its dependencies: it pins torchvision, which would pull another torch.
install:
	$(PYTHON) -m pip install -q "$(PIP_TORCH)" || true
	$(PYTHON) -m pip install -q -e ".[dev,interop]"
	$(PYTHON) -m pip install -q --no-deps "norse==1.1.0"

# Installs, then runs the test suite (what .ci/run runs).
test: install
	$(PYTHON) -m pytest -q -rs

# Installs, then runs the main job: SOLSA on JapaneseVowels (ships with aeon, no download).
train: install
	solsa train --out runs/main --force
