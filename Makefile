# trunkwatch: `make run` starts the demo, `make test` runs the whole suite.
# Both create ./.venv from the system python3 (>= 3.11) and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages the tests talk to (real peers, never mocks).
TEST_DEBS := kamailio kamailio-tls-modules sip-tester prometheus openssl ca-certificates \
	docker-compose systemd

.PHONY: run test test-deps venv lint typecheck bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

venv: $(BIN)/python
	$(BIN)/pip install -q -e '.[speed]'

run: venv
	$(BIN)/trunkwatch demo

test-deps: $(BIN)/python
	@missing=""; for p in $(TEST_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@# kubectl (for `kubectl kustomize`): the image may carry one; Debian's otherwise.
	@command -v kubectl >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends kubernetes-client; }
	$(BIN)/pip install -q -e '.[speed,dev]'

lint: test-deps
	$(BIN)/ruff check probes monitor tests bench
	$(BIN)/ruff format --check probes monitor tests bench
	$(BIN)/mypy

test: test-deps lint
	$(BIN)/pytest -q

bench: test-deps
	$(BIN)/python bench/options_loop.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
