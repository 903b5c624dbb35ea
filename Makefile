# Set-up and everyday commands. `make demo` and `make test` work on a fresh machine
# with Python >= 3.10, Java 17+ and Maven.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
KAFKA_STATE ?= .kafka-local

ROWS ?= 1000000

.PHONY: demo test lint unit integration difftest faults bench broker broker-stop clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

## demo: start a local broker, dbt build the example project, sync it, print the messages
demo: $(VENV)/.installed
	$(PY) integration_tests/demo.py

## test: lint, type check, then every test (starts its own Kafka broker)
test: lint
	$(PY) -m pytest tests -n 2 --dist loadfile --durations=25

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit

integration: $(VENV)/.installed
	$(PY) -m pytest tests/integration

## difftest: templates built by DuckDB against Liquid's rendering, on 5,000 new generated
## templates and rows per test instead of the test command's fixed 100
difftest: $(VENV)/.installed
	HYPOTHESIS_PROFILE=thorough $(PY) -m pytest tests/unit/test_template_differential.py \
		--hypothesis-show-statistics

## faults: the fault suite at full size (20 random kills per phase and mode, every named
## step on both state backends); its figures in faults.jsonl
FAULT_KILLS ?= 20
faults: $(VENV)/.installed
	rm -f faults.jsonl
	FAULT_KILLS=$(FAULT_KILLS) FAULT_FULL=1 FAULT_REPORT=$(CURDIR)/faults.jsonl \
		$(PY) -m pytest tests/integration/test_faults.py
	cat faults.jsonl

## bench: Kafka's own producer tool, a bare Python loop, pandas and dbt-kafka-sync side by side
bench: $(VENV)/.installed
	$(PY) -m pip install --quiet -r benchmarks/requirements.txt
	$(PY) benchmarks/run.py --rows $(ROWS)

## broker / broker-stop: a local Kafka broker that stays up between commands
broker: $(VENV)/.installed
	$(PY) -m local_servers.kafka start --state-dir $(KAFKA_STATE)

broker-stop: $(VENV)/.installed
	$(PY) -m local_servers.kafka stop --state-dir $(KAFKA_STATE)

clean:
	rm -rf $(VENV) $(KAFKA_STATE) integration_tests/target integration_tests/dbt_packages \
		integration_tests/logs integration_tests/.dbt_kafka_sync
