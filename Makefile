# accelscope — the two commands a user needs: `make demo` and `make test`.
# Both work on a fresh machine from a clean clone, as root or not.

SHELL      := /bin/bash
PYTHON     ?= python3
VENV       := .venv
PY         := $(VENV)/bin/python
STAMP      := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test generate venv system-deps bench clean help

help:
	@echo "make demo      the whole stack on its embedded default: a simulated HAMi cluster -> collector + exporter"
	@echo "make test      install everything needed and run every test"
	@echo "make generate  rebuild generated files (docs/metrics.md ...)"
	@echo "make bench     run the benchmarks (numbers go in docs/performance.md)"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

# System packages the tests use: promtool (Debian package `prometheus`),
# alertmanager (`prometheus-alertmanager`) and gcc.  Installed with apt-get
# when missing and running as root; otherwise a hint is printed and the
# tests that need them fail with a clear message.
system-deps:
	@missing=""; \
	command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1 || missing="$$missing prometheus-alertmanager"; \
	command -v gcc >/dev/null 2>&1 || missing="$$missing gcc libc6-dev"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "missing system packages:$$missing (install them, e.g. sudo apt-get install$$missing)"; \
	  fi; \
	fi

demo: $(STAMP)
	$(VENV)/bin/accelscope demo

test: $(STAMP) system-deps
	$(PY) -m pytest -q $(PYTEST_ARGS)

generate: $(STAMP)
	$(PY) -m scripts.generate

bench: $(STAMP)
	$(PY) benchmarks/bench_exporter.py
	$(PY) benchmarks/bench_hami_cache.py
	$(PY) benchmarks/bench_fragmentation.py
	$(PY) benchmarks/bench_collector.py
	$(PY) -m scheduler_events.simulate.validate

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
