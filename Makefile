# crnnocr — see README.md. The two commands a new machine needs:
#   make setup     Debian packages, .venv, model packs, the C library; then OCRs samples/receipt.png
#   make test      the whole test suite (sets up whatever is missing first)
# Other targets: models [PACK=...], lib, install, deploy, serve, serve-apache, bench, fuzz, lint, clean.
# Fragments in mk/ add the library (lib.mk), CGI deployment (cgi.mk), benchmark (bench.mk) and fuzz (fuzz.mk) targets.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
EVAL ?= ../shared/eval
BUILD := build
PACK ?=
# The system interpreter, not a pyenv or /root one: a web server's user must be able to run the venv.
SYSTEM_PYTHON := /usr/bin/python3
DEBIAN_PACKAGES := $(shell sed -e 's/\#.*//' setup/debian-packages.txt)

.PHONY: setup prerequisites debian-packages venv models models-all demo test lint clean

setup: prerequisites
	$(MAKE) --no-print-directory demo

# Everything the tests and the demo need; each step is idempotent.
prerequisites: debian-packages venv models-all lib

debian-packages:
	@missing=$$(dpkg-query -W -f='$${Package} $${Status}\n' $(DEBIAN_PACKAGES) 2>/dev/null \
		| awk '$$NF == "installed" {print $$1}' | sort | comm -13 - <(printf '%s\n' $(DEBIAN_PACKAGES) | sort)); \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages:" $$missing; \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q $$missing; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-pdf.txt requirements-dask.txt
	[ -x $(PY) ] || $(SYSTEM_PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -r requirements-pdf.txt -r requirements-dask.txt
	touch $@

# make models: the manifest's default pack; make models PACK=ppocr-v5 (or several, space-separated).
models: venv
	$(PY) -m ocr_core.models fetch $(PACK)

models-all: venv
	$(PY) -m ocr_core.models fetch --all

demo: venv
	@echo "--- OCR of samples/receipt.png:"
	$(PY) -m ocr_core samples/receipt.png

# CRNNOCR_VALGRIND=1: the C library's memcheck run (minutes of CPU) is part of every full run.
test: prerequisites
	$(PY) -m ruff check .
	CRNNOCR_VALGRIND=1 $(PY) -m pytest tests

lint: venv
	$(PY) -m ruff check .

clean:
	rm -rf $(BUILD) .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

-include mk/*.mk
