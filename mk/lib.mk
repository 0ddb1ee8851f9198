# libcrnnocr: the C library over ocr_core (bindings/) and the C clients (c_client/).
#   make lib                           build/libcrnnocr.so (+ build/crnnocr/: the runtime it uses in the checkout)
#   make c-clients                     build/ocr_file, build/ocr_post, build/bench_calls
#   make install [PREFIX=/usr/local] [DESTDIR=staging]   library, crnnocr.h, crnnocr.pc and the
#                                      runtime (ocr_core, models, a copy of the venv) in $(PREFIX)/lib/crnnocr
#   make uninstall [PREFIX=...] [DESTDIR=...]
PY ?= .venv/bin/python
BUILD ?= build
PREFIX ?= /usr/local
DESTDIR ?=
CC ?= cc
CLIENT_CFLAGS := -std=c99 -Wall -Wextra -Werror -pedantic
LIB_SO := $(BUILD)/libcrnnocr.so.0
LIB_SOURCES := bindings/build_lib.py bindings/capi.c bindings/bridge.py bindings/crnnocr.h \
	bindings/libcrnnocr.map ocr_core/errors.py

.PHONY: lib c-clients install uninstall

lib: $(LIB_SO)

$(LIB_SO): $(LIB_SOURCES)
	$(PY) bindings/build_lib.py --build-dir $(BUILD)

c-clients: $(BUILD)/ocr_file $(BUILD)/ocr_post $(BUILD)/bench_calls

$(BUILD)/ocr_file: c_client/ocr_file.c bindings/crnnocr.h $(LIB_SO)
	$(CC) $(CLIENT_CFLAGS) -O2 -Ibindings $< -L$(BUILD) -Wl,-rpath,'$$ORIGIN' -lcrnnocr -o $@

$(BUILD)/bench_calls: c_client/bench_calls.c bindings/crnnocr.h $(LIB_SO)
	$(CC) $(CLIENT_CFLAGS) -O2 -pthread -Ibindings $< -L$(BUILD) -Wl,-rpath,'$$ORIGIN' -lcrnnocr -o $@

# libc only: the firmware-style client needs nothing else.
$(BUILD)/ocr_post: c_client/ocr_post.c
	@mkdir -p $(@D)
	$(CC) $(CLIENT_CFLAGS) -O2 $< -o $@

install: lib
	$(PY) -m deploy install-lib --build-dir $(BUILD) --prefix $(PREFIX) $(if $(DESTDIR),--destdir $(DESTDIR))

uninstall:
	$(PY) -m deploy uninstall-lib --prefix $(PREFIX) $(if $(DESTDIR),--destdir $(DESTDIR))

# The slow memory checks the default test run skips: valgrind over ocr_file (minutes) and RSS growth.
.PHONY: c-memcheck
c-memcheck:
	CRNNOCR_VALGRIND=1 $(PY) -m pytest -rs tests/test_c_lib.py -k "valgrind or rss"
