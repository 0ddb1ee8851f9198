# `make bench`: accuracy and speed of crnnocr beside its peers (bench/README.md).
# The peers live in venvs of their own under .venv-bench/, made from the system Python like .venv.
# Overrides: EVAL=path/to/eval, BENCH_ARGS="--packs all --rows sroie_lines_en --max-images 20 --skip cgi,c".
PY ?= .venv/bin/python
EVAL ?= ../shared/eval
BENCH_VENV := .venv-bench
BENCH_ARGS ?=

.PHONY: bench bench-venv
bench: bench-venv
	$(PY) -m bench --eval $(EVAL) $(BENCH_ARGS)

bench-venv: $(BENCH_VENV)/v6/.installed $(BENCH_VENV)/v4/.installed

# One venv per RapidOCR release: their OpenCV wheels both install `cv2` (see requirements-bench.txt).
$(BENCH_VENV)/v6/.installed: requirements-bench.txt
	rm -rf $(@D) && /usr/bin/python3 -m venv $(@D)
	$(@D)/bin/pip install --quiet --disable-pip-version-check -r $<
	touch $@

$(BENCH_VENV)/v4/.installed: requirements-bench-v4.txt
	rm -rf $(@D) && /usr/bin/python3 -m venv $(@D)
	$(@D)/bin/pip install --quiet --disable-pip-version-check -r $<
	touch $@
