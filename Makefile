# The README's two set-up commands: `make demo` and `make test`. Each installs into .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO_OUT := outputs/demo

.PHONY: install demo test test-slow bench bench-quick clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@# PyTorch 2.13.0 first: on a CPU machine that takes the local CPU build instead of CUDA packages.
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,tiny]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/diffrep sample --prompt "a red mug, front view" --n 8 --seed 0 --out $(DEMO_OUT) --overwrite
	@echo "demo outputs: $(DEMO_OUT)/samples.png (grid), $(DEMO_OUT)/samples.safetensors, $(DEMO_OUT)/run.json"

test: install
	$(PY) -m pytest -q -n 2

test-slow: install
	$(PY) -m pytest -q -m slow

SUITES := toyworld prior table1 diversity speed panorama prior-quality

bench: install  # all suites, and table1/diversity on the tiny prior: about 80 minutes on the 2-core machine
	for s in $(SUITES); do $(VENV)/bin/diffrep bench $$s || exit 1; done
	for s in table1 diversity; do $(VENV)/bin/diffrep bench $$s --prior tiny || exit 1; done

bench-quick: install  # every suite in its short form, about 5 minutes on the 2-core machine
	for s in $(SUITES); do $(VENV)/bin/diffrep bench $$s --quick || exit 1; done

clean:
	rm -rf $(VENV) outputs .pytest_cache
