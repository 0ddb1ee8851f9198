# Long runs that `make test` cannot afford (minutes of CPU each):
#   make stress [STRESS_CALLS=20000]   the C library's resident memory over many calls: levels off?
STRESS_CALLS ?= 20000

.PHONY: stress stress-c-rss

stress: stress-c-rss

stress-c-rss: c-clients
	$(PY) stress/c_rss.py --bench-calls $(BUILD)/bench_calls --calls $(STRESS_CALLS)
