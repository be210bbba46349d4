# Quick start: `make run` (the whole platform) and `make test` (the whole suite, real services).
# Both install what is missing first: system packages, TimescaleDB, the virtualenv.
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | sha1sum | cut -c1-12)

.PHONY: setup system venv run test lint lock clean

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

test: setup
	$(VENV)/bin/pytest

lint: venv
	$(VENV)/bin/ruff check .

# Re-pin every dependency after changing pyproject.toml (then commit requirements.lock).
lock: venv
	$(VENV)/bin/pip freeze --exclude-editable > requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache
