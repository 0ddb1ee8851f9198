# Long runs that `make test` cannot afford (minutes of CPU each):
#   make stress [STRESS_CALLS=20000]   the C library's resident memory over many calls: levels off?
STRESS_CALLS ?= 20000

.PHONY: stress stress-c-rss

stress: stress-c-rss

stress-c-rss: c-clients
	$(PY) stress/c_rss.py --bench-calls $(BUILD)/bench_calls --calls $(STRESS_CALLS)

# README "Bounds", measured (a few minutes on 2 cores; stress/bounds.py): peak RSS of the largest
# allowed image per format on the CLI, the CGI and the C library, the crafted set's codes and
# times, and 8 and 16 clients' total memory through lighttpd (pure CGI, pool). The report goes to
# stress/results/<date>-bounds.md; exit status 1 if a bound breaks.
#   make stress-bounds [STRESS_ARGS="--clients 8,16 --server apache --skip peaks"]
STRESS_ARGS ?=

.PHONY: stress-bounds bench-bounds

stress: stress-bounds

stress-bounds: c-clients
	$(PY) -m stress.bounds $(STRESS_ARGS)

# A full `make bench` (no BENCH_ARGS) reports the bounds too, first; a broken one is in its report
# and does not stop the benchmark.
ifeq ($(BENCH_ARGS),)
bench: bench-bounds
endif
bench-bounds: c-clients
	-$(PY) -m stress.bounds $(STRESS_ARGS)
