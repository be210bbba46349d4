# Quick start: `make run` (the whole platform) and `make test` (the whole suite, real services).
# Both install what is missing first: system packages, TimescaleDB, the virtualenv.
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | sha1sum | cut -c1-12)

.PHONY: setup system venv run test lint layers typecheck lock clean

setup: system venv

system:
	@bash scripts/install-system.sh

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

run: setup
	$(VENV)/bin/smartcity up

# The layer and type checks run first: they take seconds, the suite takes minutes.
test: setup layers typecheck
	$(VENV)/bin/pytest

lint: venv layers
	$(VENV)/bin/ruff check .

# Import contracts in .importlinter: roof (cli, launcher, supervisor, bench) over middle (ingest, api,
# simulators, dashboards) over the ground floor (the rest of smartcity).
layers: venv
	$(VENV)/bin/lint-imports --no-cache --no-logo

# mypy, configured in pyproject.toml: strict on smartcity and ingest, checked on the rest.
typecheck: venv
	$(VENV)/bin/mypy

# Re-pin every dependency after changing pyproject.toml (then commit requirements.lock).
lock: venv
	$(VENV)/bin/pip freeze --exclude-editable > requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache
