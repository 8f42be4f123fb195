# Kumeo developer entry points. Every target installs what it needs, so a fresh clone works as written.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
KUMEO  := $(VENV)/bin/kumeo
STAMP  := $(VENV)/.installed
EXTRAS := test,nats,pulumi,llm
EXAMPLE := examples/fraud_detection/fraud_detection.kumeo
PYTEST_ARGS ?=

.PHONY: install test demo bench clean docs

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

## make test: install everything and run the whole suite (unit, scenarios, integration on a real nats-server)
test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

## make demo: the fraud-detection example from definition to deployable plan
demo: $(STAMP)
	$(KUMEO) check $(EXAMPLE)
	$(KUMEO) graph $(EXAMPLE)
	$(KUMEO) render $(EXAMPLE) --out out/fraud-detection

## make bench: the performance figures (see docs/performance.md)
bench: $(STAMP)
	@for script in benchmarks/bench_*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

docs: $(STAMP)
	$(PY) -m kumeo_iac._docs

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
