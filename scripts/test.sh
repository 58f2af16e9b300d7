#!/usr/bin/env bash
# The test command behind `make test`. On the embedded defaults it runs the suite once.
# With DATABASE_URL (PostgreSQL) and REDIS_URL set it runs it twice: first on the embedded
# defaults (so they keep working), then against the real services, integration tests
# (a real Celery worker) included.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

if [[ -n "${DATABASE_URL:-}" && -n "${REDIS_URL:-}" ]]; then
  echo "== pass 1/2: embedded defaults (SQLite, in-memory channel layer)"
  env -u DATABASE_URL -u REDIS_URL -u CELERY_BROKER_URL \
    "$PY" -m pytest -m "not integration" -p no:cacheprovider "$@"
  echo "== pass 2/2: PostgreSQL + Redis + Celery worker"
  # Redis pub/sub ignores the database number: a prefix of this run's own keeps its
  # channel-layer messages apart from any other suite or site on the same Redis.
  CHANNEL_PREFIX="${CHANNEL_PREFIX:-asgi-test-$$}" "$PY" -m pytest -p no:cacheprovider "$@"
else
  "$PY" -m pytest -p no:cacheprovider "$@"
fi
