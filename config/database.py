"""The database settings from the environment (read by ``config/settings.py``).

Embedded default: a SQLite file in WAL mode with IMMEDIATE transactions, so the web server and
a worker can write side by side without "database is locked". Production/CI: ``DATABASE_URL``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent

DEFAULT_SQLITE = BASE_DIR / "var" / "flowdesk.sqlite3"
DATABASE_URL = os.environ.get("DATABASE_URL", f"sqlite:///{DEFAULT_SQLITE}")
# FLOWDESK_DB_CONN_MAX_AGE: seconds to keep a connection. Persistent by default: django-q2 calls
# close_old_connections() around every task and every ORM-broker enqueue, so with 0 each step paid
# a fresh PostgreSQL connection (a backend fork); health checks drop a connection that went bad.
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=int(os.environ.get("FLOWDESK_DB_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
# FLOWDESK_DB_POOLER=pgbouncer: DATABASE_URL is a PgBouncer in transaction mode (one server
# connection per transaction, not per client). Everything that lives in a session then breaks:
# psycopg's prepared statements (PgBouncer before 1.21 can't keep them; so off by default here)
# and Django's server-side cursors (a WITH HOLD cursor outlives the transaction; turned off).
# The timer loop's leader uses a lease row, not a session advisory lock, for the same reason.
FLOWDESK_DB_POOLER = os.environ.get("FLOWDESK_DB_POOLER", "").strip().lower()
if FLOWDESK_DB_POOLER not in ("", "pgbouncer"):
    sys.exit("error: FLOWDESK_DB_POOLER: empty (a direct connection) or 'pgbouncer'")
# FLOWDESK_DB_PREPARE (PostgreSQL): after this many runs of the same statement on a connection,
# psycopg prepares it on the server, so PostgreSQL stops planning it again. Planning the
# permission checks cost 1-3 ms of database CPU per API call. 0 turns it off (the default behind
# PgBouncer; set it behind PgBouncer >= 1.21 with max_prepared_statements > 0, which keeps
# protocol-level prepared statements per server connection).
FLOWDESK_DB_PREPARE = int(
    os.environ.get("FLOWDESK_DB_PREPARE") or ("0" if FLOWDESK_DB_POOLER else "5")
)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["OPTIONS"] = {
        **DATABASES["default"].get("OPTIONS", {}),
        # Server-side parameters (unnamed statements: fine behind any pooler): what prepared
        # statements need, and the hot paths' binary results (processes/db/internals.py, fetch).
        "server_side_binding": True,
        "prepare_threshold": FLOWDESK_DB_PREPARE if FLOWDESK_DB_PREPARE > 0 else None,
    }
    if FLOWDESK_DB_POOLER:
        DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / "test_flowdesk.sqlite3")}
