# The README's two set-up commands: `make demo` and `make test`. Each installs into .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO_OUT := outputs/demo

.PHONY: install demo test test-fuzz test-slow reliability bench bench-quick clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@# PyTorch 2.13.0 first: on a CPU machine that takes the local CPU build instead of CUDA packages.
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,tiny,diffusers]'
	touch $(STAMP)

install: $(STAMP)

# The headline: DDRep samples a NeRF of "a yellow duck" from the embedded toy-world prior (25-45 s here, docs/nerf.md;
# a demo preset: 30 steps with one RePaint round each; `diffrep sample --rep nerf --method ddrep` alone is the
# default config). One torch thread: rendering is many small kernels, and a second thread on a busy 2-core
# machine made the same run 8x slower (measured: 15 min against 104 s).
demo: install
	OMP_NUM_THREADS=1 $(VENV)/bin/diffrep sample --rep nerf --method ddrep --prompt "a yellow duck" --n 1 --seed 0 \
		--steps 30 --eta 1 --ddrep.rounds 2 --ddrep.views-per-step 4 --out $(DEMO_OUT) --overwrite
	@echo "demo outputs: $(DEMO_OUT)/turntable-0.gif (turntable; also .mp4), $(DEMO_OUT)/views.png (8 views, front first), $(DEMO_OUT)/geometry-0.png (their normals, depth, textureless shading), $(DEMO_OUT)/mesh-0.glb (mesh; also .obj, .ply), $(DEMO_OUT)/run.json"

test: install
	$(PY) -m pytest -q -n 2

test-fuzz: install  # property-based fuzzing of the CLI and the API: 4 x 3,000 generated inputs, about 8 minutes
	DIFFREP_FUZZ=1 $(PY) -m pytest -q -p no:xdist tests/test_fuzz.py

test-slow: install  # the default NeRFs of a yellow duck end to end against their figures, about 3 minutes
	$(PY) -m pytest -q -m slow

# docs/reliability.md's figures: the catalogue of refused inputs per command, first-error times, 12,000 fuzzed
# inputs (about 5 minutes), and the memory estimate against measured peaks (about 4 minutes).
reliability: install
	$(PY) bench/scripts/reliability_figures.py
	OMP_NUM_THREADS=1 $(PY) bench/scripts/memory_estimate.py

SUITES := toyworld prior table1 diversity speed panorama panorama-scenes prior-quality sd-cost lmc lmc-translation nerf3d

bench: install  # all suites, and table1/diversity on the tiny prior: about 2.5 hours on the 2-core machine, plus lmc-translation (about 2.7 hours) and nerf3d (about 4.5 hours on one thread, 144 min as two shards: `diffrep bench nerf3d --shard 1/2` and `2/2` in two processes, then without --shard; or section by section, `--section default-prior|extra|camera-prior|lmc-sds`, 26, 19, 19 and 80 min as two shards)
	for s in $(SUITES); do $(VENV)/bin/diffrep bench $$s || exit 1; done
	for s in table1 diversity; do $(VENV)/bin/diffrep bench $$s --prior tiny || exit 1; done

bench-quick: install  # every suite in its short form, about 5 minutes on the 2-core machine
	for s in $(SUITES); do $(VENV)/bin/diffrep bench $$s --quick || exit 1; done

clean:
	rm -rf $(VENV) outputs .pytest_cache
