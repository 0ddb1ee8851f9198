# `make fuzz`: the mutation fuzz of the image decoder (tests/fuzz_decode.py) for minutes, not the
# suite's 15 seconds. Overrides: FUZZ_SECONDS=600, FUZZ_SEED=<n> (default: a new one each run,
# printed in the summary), FUZZ_SAVE=<dir> for the inputs of any finding.
PY ?= .venv/bin/python
FUZZ_SECONDS ?= 600
FUZZ_SEED ?= $(shell date +%s)
FUZZ_SAVE ?= build/fuzz-findings

.PHONY: fuzz
fuzz: venv
	$(PY) -m tests.fuzz_decode --seconds $(FUZZ_SECONDS) --seed $(FUZZ_SEED) --save $(FUZZ_SAVE)
