# Every target sets up what it needs: a fresh clone runs `make demo` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck imports unit bench dist clean protos

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# setuptools announces every editable install with a warning block: not news here.
$(STAMP): $(BIN)/python pyproject.toml
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	@echo "== flow verify: the sensor pipeline is valid"
	$(BIN)/flow verify examples/sensors/blueprint.yaml
	@echo "== flow verify: what verify catches in broken.yaml (exit 1 expected)"
	@echo "$(BIN)/flow verify examples/sensors/broken.yaml"
	@$(BIN)/flow verify examples/sensors/broken.yaml; test $$? -eq 1
	@echo "== flow graph"
	$(BIN)/flow graph examples/sensors/blueprint.yaml --format mermaid
	@echo "== flow run-local: 1,000 readings through source -> threshold (2 replicas) -> store"
	$(BIN)/flow run-local examples/sensors/blueprint.yaml --run-dir runs/demo
	@echo "== the first alerts, of $$(wc -l < examples/sensors/output/alerts.jsonl), in examples/sensors/output/alerts.jsonl"
	@head -n 5 examples/sensors/output/alerts.jsonl

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The dependency direction of DESIGN.md §2 (contracts in pyproject.toml).
imports: $(STAMP)
	$(BIN)/lint-imports

# Two workers by default (most integration tests wait on brokers and servers; each worker
# starts its own broker on free ports). The tests marked `serial` time how fast a stop is,
# which a second worker on two cores can slow past their limits: they run afterwards, alone.
PYTEST_WORKERS ?= 2

unit: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS) -m "not serial" --durations=15
	$(BIN)/pytest -n 0 -m serial

test: lint typecheck imports unit

# The Open Inference Protocol's messages for V2 over gRPC, generated from the committed .proto
# (tests/streamlets/test_serving_grpc.py checks that the generated files are current).
protos: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. \
		streamlets/serving/_oip/open_inference.proto

# quixstreams pins an older confluent-kafka than ours: it gets a venv of its own.
QUIX := .cache/bench-quix

$(QUIX)/bin/python:
	$(PYTHON) -m venv $(QUIX)
	$(QUIX)/bin/python -m pip install --quiet 'quixstreams==3.28.1'

bench: $(STAMP) $(QUIX)/bin/python
	$(BIN)/python benchmarks/verify.py
	$(BIN)/python benchmarks/local_runner.py
	$(BIN)/python benchmarks/memory.py
	$(BIN)/python benchmarks/state_store.py
	$(BIN)/python benchmarks/state.py --quix-python $(QUIX)/bin/python
	$(BIN)/python benchmarks/windows.py --quix-python $(QUIX)/bin/python
	$(BIN)/python benchmarks/kafka_runner.py --quix-python $(QUIX)/bin/python
	$(BIN)/python benchmarks/model_serving.py
	$(BIN)/python benchmarks/batch_scoring.py --kafka

# The wheel to install the framework into another project's venv (DIST=DIR to build elsewhere):
# pip install dist/streamlets-<version>-py3-none-any.whl
DIST ?= dist

dist: $(STAMP)
	rm -rf $(DIST)
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir $(DIST) .
	@ls $(DIST)/*.whl

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .pytest_cache .ruff_cache
