#!/usr/bin/env bash
# Run the whole test suite. Uses $DATABASE_URL when set; otherwise the local PostgreSQL on
# 127.0.0.1:5432 if one answers (database flowdesk_test), else SQLite (PostgreSQL-only tests skip).
#
# In parallel: FLOWDESK_TEST_WORKERS pytest-xdist workers (default below; 0 runs every test in
# one process), each with its own test database (test_<name>_gw0, _gw1, ...) and its own Redis
# database (FLOWDESK_TEST_REDIS_URL's number + the worker's; tests/conftest.py). The tests that
# start a worker supervisor run one after the other on one worker (xdist group "supervision",
# --dist loadgroup in pyproject.toml). Arguments go to pytest after ours: "-n 2" overrides.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

if [ -z "${DATABASE_URL:-}" ]; then
  if $BIN/python - <<'PY' 2>/dev/null
import psycopg
psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", connect_timeout=2).close()
PY
  then
    export DATABASE_URL="postgresql://postgres@127.0.0.1:5432/flowdesk_test"
  else
    echo "note: no PostgreSQL on 127.0.0.1:5432 and no DATABASE_URL: running on SQLite;" \
         "PostgreSQL-only tests (concurrency, triggers) will be skipped" >&2
  fi
fi

# Create the database named by DATABASE_URL if it is PostgreSQL and missing.
if [[ "${DATABASE_URL:-}" == postgres* ]]; then
  $BIN/python - <<'PY'
import os
from urllib.parse import urlparse, urlunparse

import psycopg
from psycopg import sql

url = urlparse(os.environ["DATABASE_URL"])
name = url.path.lstrip("/")
admin = urlunparse(url._replace(path="/postgres"))
with psycopg.connect(admin, autocommit=True) as conn:
    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        print(f"created database {name}")
PY
fi

# Browser tests use Debian's chromium (never a downloaded browser); install it when we can.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian chromium for the browser tests" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "warning: could not install chromium; browser tests will be skipped" >&2
fi

# PgBouncer tests (tests/operations/test_pgbouncer.py) start Debian's pgbouncer themselves; the
# several-hosts test (tests/operations/test_hosts.py) needs ip (iproute2) and socat.
missing=()
[ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
command -v socat >/dev/null || missing+=(socat)
command -v ip >/dev/null || missing+=(iproute2)
if [ "${#missing[@]}" -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian ${missing[*]} for the pooler and several-hosts tests" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null) \
    || echo "warning: could not install ${missing[*]}; their tests will be skipped" >&2
fi

mkdir -p tests/artifacts
workers="${FLOWDESK_TEST_WORKERS:-4}"
echo "database: ${DATABASE_URL:-sqlite (default)}; workers: $workers"
exec $BIN/python -m pytest -n "$workers" "$@"
