# trunkwatch: `make run` starts the demo, `make test` runs the whole suite.
# Both create ./.venv from the system python3 (>= 3.11) and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
comma := ,
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian libraries the monitor itself needs (WeasyPrint renders the PDF reports).
RUN_DEBS := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core
# Debian packages the tests talk to (real peers, never mocks).
TEST_DEBS := $(RUN_DEBS) kamailio kamailio-tls-modules sip-tester prometheus openssl \
	ca-certificates docker-compose systemd baresip-core poppler-utils dovecot-imapd \
	request-tracker5 rt5-db-sqlite rt5-clients postgresql-15 dnsmasq-base

# Every install resolves from the lock (pip-compile of pyproject.toml): a release upstream
# cannot change what a fresh machine gets. `make lock` regenerates it.
LOCK := requirements.lock
EXTRAS_RUN := speed,calls,reports
EXTRAS_TEST := speed,calls,reports,postgres,dev

.PHONY: run test test-deps run-deps venv lint typecheck bench clean lock fresh-check

# Installs whichever of the named Debian packages are missing (nothing when all are there).
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

$(BIN)/python:
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

run-deps:
	$(call apt_install,$(RUN_DEBS))

venv: $(BIN)/python run-deps
	$(BIN)/pip install -q -c $(LOCK) -e '.[$(EXTRAS_RUN)]'

run: venv
	$(BIN)/trunkwatch demo

test-deps: $(BIN)/python
	$(call apt_install,$(TEST_DEBS))
	@# kubectl (for `kubectl kustomize`): the image may carry one; Debian's otherwise.
	@command -v kubectl >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends kubernetes-client; }
	$(BIN)/pip install -q -c $(LOCK) -e '.[$(EXTRAS_TEST)]'

lint: test-deps
	$(BIN)/ruff check probes monitor tests bench
	$(BIN)/ruff format --check probes monitor tests bench
	$(BIN)/mypy
	$(BIN)/mypy bench

test: test-deps lint
	$(BIN)/pytest -q

lock: $(BIN)/python
	$(BIN)/pip install -q -c $(LOCK) pip-tools
	$(BIN)/pip-compile -q --no-emit-index-url --no-emit-find-links --strip-extras --allow-unsafe \
	  $(foreach e,$(subst $(comma), ,$(EXTRAS_TEST)),--extra $(e)) -o $(LOCK) pyproject.toml

# What a new user gets: a clone of the committed HEAD in an empty directory, then `make test`.
fresh-check:
	@d=$$(mktemp -d) && git clone -q "$(CURDIR)" "$$d/tw" && cd "$$d/tw" && $(MAKE) test && \
	  echo "fresh clone in $$d/tw: make test passed" && rm -rf "$$d"

bench: test-deps
	$(BIN)/python bench/options_loop.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
