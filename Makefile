# Lantern: `make run` starts the app, `make test` runs the tests. Both set themselves up.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint bench soak clean

run: $(STAMP)
	$(PY) -m app $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# All five benchmarks at full scale (about 15 minutes); BENCH_ARGS=--quick for a smoke run of about 5 minutes,
# BENCH_ARGS="--only startup,history_scale" for some. Results: bench/results/*.json and SUMMARY.md.
bench: $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

# Longer than `make test` allows: 50 SSE clients + 8 Chromium tabs for 60 s (exit 1 on any error or
# memory not back near baseline), then API fuzzing with many more examples, every operation reached.
soak: $(STAMP)
	$(PY) -m soak.soak $(SOAK_ARGS)
	LANTERN_FUZZ_EXAMPLES=40 LANTERN_FUZZ_SECONDS=300 LANTERN_FUZZ_STRICT=1 $(PY) -m pytest -q tests/reliability/test_api_fuzz.py

lint: $(STAMP)
	$(VENV)/bin/ruff check app components services storage tests bench
	$(VENV)/bin/mypy app components services storage

$(STAMP): pyproject.toml
	@test -x $(PY) || { echo ">> creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo ">> installing Lantern and its dependencies into $(VENV)"
	@echo ">> the first install compiles llama.cpp (llama-cpp-python): about 10 minutes on 2 cores;"
	@echo ">> pip caches the built wheel, so later installs take seconds"
	$(PY) -m pip install --upgrade pip --quiet
	$(PY) -m pip install --progress-bar on -e '.[dev,native]'
	@touch $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
