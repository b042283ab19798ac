# tokenforge: `make run` for the embedded demo, `make test` for the whole suite.
# CPython 3.11, 3.12 or 3.13: the newest found, or the one named by PYTHON=3.12 (or a path).
PYTHON ?=
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8000
WEB_CONCURRENCY ?= 2
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install run serve worker migrate lint format test test-sqlite test-pythons bench audit services

# PYTHON= names a version other than the one .venv was built with: build it anew.
ifneq ($(PYTHON),)
WANT_PY := $(shell py=$$(PYTHON="$(PYTHON)" bash scripts/find_python.sh 2>/dev/null) && $$py -c 'import sys; print("%d.%d" % sys.version_info[:2])')
HAVE_PY := $(shell test -x $(BIN)/python && $(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
ifneq ($(WANT_PY),)
ifneq ($(WANT_PY),$(HAVE_PY))
$(shell rm -rf $(VENV))
endif
endif
endif

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || { py=$$(PYTHON="$(PYTHON)" bash scripts/find_python.sh) && \
	  echo "make: building $(VENV) with $$($$py --version) ($$py)" && $$py -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

migrate: $(STAMP)
	$(BIN)/python manage.py migrate --noinput

run: $(STAMP)
	$(BIN)/python scripts/run_demo.py

serve: $(STAMP)
	DJANGO_SETTINGS_MODULE=$${DJANGO_SETTINGS_MODULE:-config.settings.production} $(BIN)/python scripts/serve.py --port $(PORT) --workers $(WEB_CONCURRENCY)

worker: $(STAMP)
	DJANGO_SETTINGS_MODULE=$${DJANGO_SETTINGS_MODULE:-config.settings.production} $(BIN)/celery -A config worker --beat --loglevel=INFO

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/deptry .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

services:
	bash scripts/services.sh chromium

# The money tests run twice: on PostgreSQL (make serve) and on SQLite (make run's embedded default).
MONEY_TESTS := tests/ledger/test_holds_basic.py tests/ledger/test_hold_races.py \
	tests/ledger/test_redemption_codes.py tests/ledger/test_topup_page.py tests/ledger/test_topup_rmb_and_receipts.py tests/ledger/test_wallet_alerts_and_auto_topup.py tests/ledger/test_topup_races.py \
	tests/ledger/test_topup_command.py tests/ledger/test_stripe_checkout.py tests/ledger/test_stripe_webhook.py \
	tests/ledger/test_shortfall.py tests/ledger/test_adjustments.py tests/ledger/test_reconcile.py \
	tests/ledger/test_state_machine.py tests/ledger/test_stampede.py tests/ledger/test_wallets_command.py \
	tests/routing/test_balance_and_budgets.py tests/routing/test_refusals_explained.py

test: $(STAMP) services
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	$(MAKE) test-sqlite

test-sqlite: $(STAMP)
	$(BIN)/python -m pytest --ds config.settings.test_sqlite $(MONEY_TESTS)

# The fast suite (ledger and routing, no browser) on each other supported CPython found here,
# each in its own .venv-3.X; the one .venv runs is skipped (`make test` covers it).
PYTHONS ?= 3.11 3.12 3.13
FAST_TESTS ?= tests/ledger tests/routing
test-pythons: $(STAMP) services
	@have=$$($(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	for v in $(PYTHONS); do \
	  if [ "$$v" = "$$have" ]; then echo "test-pythons: $$v is .venv's Python, covered by make test"; continue; fi; \
	  py=$$(PYTHON=$$v bash scripts/find_python.sh 2>/dev/null) || { echo "test-pythons: no CPython $$v here, skipped"; continue; }; \
	  echo "test-pythons: CPython $$v ($$py)"; \
	  test -x .venv-$$v/bin/python || $$py -m venv .venv-$$v || exit 1; \
	  .venv-$$v/bin/pip install -q --upgrade pip && .venv-$$v/bin/pip install -q -e '.[dev]' || exit 1; \
	  .venv-$$v/bin/python -m pytest -q -m "not browser and not soak" $(FAST_TESTS) || exit 1; \
	done

bench: $(STAMP)
	bash scripts/services.sh wrk
	$(BIN)/python bench/run.py

# Known vulnerabilities in the locked dependencies (needs the PyPI/OSV vulnerability service;
# on demand, not in CI). --strict: a package that could not be checked fails the audit.
# Regenerate the lock after changing dependencies: $(BIN)/pip freeze --exclude-editable > requirements.lock
audit: $(STAMP)
	$(BIN)/pip-audit --strict --no-deps --disable-pip --progress-spinner off -r requirements.lock
