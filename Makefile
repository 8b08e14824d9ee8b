# KV Cache Lab. `make run` serves the app, `make test` runs every test (browser tests included).
# Every target creates or updates .venv first; all are idempotent and quick when nothing changed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8501

.PHONY: venv chromium nginx postgres run serve test bench loadtest lint format screenshot clean

$(STAMP): requirements.txt requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

venv: $(STAMP)

# Use a Chromium that is already installed; else apt (as root on Debian); else Playwright's download.
chromium: $(STAMP)
	@bash scripts/ensure_chromium.sh $(PY)

# nginx for `make serve` and the deploy test: installed already, else apt as root (see the script).
nginx:
	@bash scripts/ensure_nginx.sh || true

# A throwaway PostgreSQL on 127.0.0.1:54329 for the workshop store tests: already running, else started from
# installed binaries, else (as root on Debian) apt-get install postgresql; never fails (the tests then skip).
postgres:
	@bash scripts/ensure_postgres.sh

run: $(STAMP)
	MALLOC_ARENA_MAX=2 $(PY) -m streamlit run app.py --server.port $(PORT) --server.headless true

# N app processes behind nginx on one port: REPLICAS=2 SERVE_PORT=8500 by default (deploy/serve.py).
serve: $(STAMP)
	@bash scripts/ensure_nginx.sh
	$(PY) -m deploy.serve --replicas $(or $(REPLICAS),2) --port $(or $(SERVE_PORT),8500)

test: $(STAMP) chromium nginx postgres
	$(PY) -m pytest

bench: $(STAMP) chromium
	$(PY) -m bench
	$(PY) -m bench.pages

loadtest: $(STAMP) $(if $(REPLICAS),nginx)
	$(PY) -m bench.loadtest --participants $(or $(PARTICIPANTS),30) --seconds $(or $(SECONDS),120) \
		$(if $(REPLICAS),--replicas $(REPLICAS))

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# Regenerates assets/screenshot.png for the README from the running app in headless Chromium.
screenshot: $(STAMP) chromium
	$(PY) scripts/screenshot.py --out assets/screenshot.png

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
