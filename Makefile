# AgentStore: `make run` installs and serves the product on embedded defaults with demo
# data; `make test` installs and runs the test suite. See README.md.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.12 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
STAMP := $(VENV)/.installed

export AGENTSTORE_VAR_DIR ?= $(CURDIR)/var

.PHONY: run test install install-dev migrate demo serve worker beat lint messages clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) requirements.txt requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

var/secret_key:
	@mkdir -p var && umask 077 && $(PY) -c "import secrets; print(secrets.token_urlsafe(50))" > var/secret_key

# Embedded defaults: SQLite under var/, in-memory channel layer, runs on worker threads.
run: install var/secret_key
	SECRET_KEY_FILE=var/secret_key $(PY) manage.py migrate --noinput
	SECRET_KEY_FILE=var/secret_key $(PY) manage.py collectstatic --noinput -v 0
	SECRET_KEY_FILE=var/secret_key $(PY) manage.py seed_demo
	SECRET_KEY_FILE=var/secret_key $(PY) -m uvicorn agentstore.asgi:application \
		--host $(HOST) --port $(PORT) --ws-max-size 1048576 --timeout-graceful-shutdown 10

test: install
	$(PY) -m ruff check .
	./scripts/test.sh

# Production mode: DATABASE_URL, REDIS_URL, SECRET_KEY (and SECRET_KEYS) set in the environment.
serve: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py ensure_initial_admin
	$(PY) manage.py collectstatic --noinput -v 0
	$(PY) -m uvicorn agentstore.asgi:application --host $(HOST) --port $(PORT) --workers $${WEB_CONCURRENCY:-2}

worker: install
	# Runs are I/O-bound and async inside: a thread pool per process, one process per core;
	# the threads share a pool of DB_POOL_SIZE database connections.
	DB_POOL_SIZE=$${DB_POOL_SIZE:-32} $(PY) -m celery -A agentstore worker --loglevel=INFO \
		--pool threads --concurrency=$${WORKER_CONCURRENCY:-100}

beat: install
	$(PY) -m celery -A agentstore beat --loglevel=INFO

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

messages: install
	DEBUG=1 $(PY) manage.py makemessages -l zh_Hans -l zh_Hant --ignore=.venv --ignore=var
	DEBUG=1 $(PY) manage.py compilemessages --ignore=.venv

clean:
	rm -rf $(VENV) staticfiles
