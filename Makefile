# Two commands for a newcomer:  `make run` (the product, embedded SQLite, demo data)  and  `make test`.
VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PORT    ?= 5000
HOST    ?= 127.0.0.1
PYTEST_ARGS ?= -n 3 --durations=40

.PHONY: run test install install-dev browser services lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## The product on the embedded default: SQLite in ./instance, one process, demo data.
run: $(VENV)/.installed
	$(BIN)/growth demo
	$(BIN)/growth serve --host $(HOST) --port $(PORT)

## The whole suite, on SQLite and PostgreSQL, with the browser tests.
test: $(VENV)/.installed-dev browser services
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy
	@$(BIN)/pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure here"; fi; exit $$rc

## Debian's Chromium (and CJK fonts) for the Playwright browser tests; never `playwright install`.
browser:
	@{ command -v chromium && fc-list :lang=zh-cn family | grep -q .; } >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; }

## PostgreSQL (127.0.0.1:5432, database `test`) and Redis, started if they are down.
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || \
	  $(SUDO) pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || \
	  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

clean:
	rm -rf $(VENV) instance .pytest_cache

## Extract the Chinese source strings, merge them into the English catalog, compile it (.po and .mo are committed).
.PHONY: translations
translations: $(VENV)/.installed
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext --ignore-dirs ".* _* .venv tests" \
	  --project growth --version 0.1.0 -o growth/translations/messages.pot .
	@if [ -f growth/translations/en/LC_MESSAGES/messages.po ]; then \
	  $(BIN)/pybabel update -i growth/translations/messages.pot -d growth/translations -l en --ignore-obsolete; \
	else \
	  $(BIN)/pybabel init -i growth/translations/messages.pot -d growth/translations -l en; \
	fi
	$(BIN)/pybabel compile -d growth/translations -l en --statistics
