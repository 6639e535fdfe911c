"""What the benches share besides the data sets (bench/seeding.py): their database, Django,
the definitions they run, their people, and how they print percentiles.

Every bench takes ``--database-url`` (its own database by default, dropped and created afresh
where it says so) and ``--keep-database`` (use the database as it is: never drop or create it).
The suite's smoke test (tests/test_benches.py) runs each bench at a tiny size on its own test
database with ``--keep-database``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG = os.environ.get("FLOWDESK_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
DEFINITIONS = ROOT / "processes" / "definitions"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def add_database_options(parser, default_name: str, *aliases: str) -> None:
    parser.add_argument(
        "--database-url",
        *aliases,
        default=f"{PG}/{default_name}",
        help=f"the bench's PostgreSQL database (default {PG}/{default_name})",
    )
    parser.add_argument(
        "--keep-database",
        action="store_true",
        help="use the database as it is (migrated if needed): never drop or create it",
    )


def database_name(url: str) -> str:
    return url.rsplit("/", 1)[1].split("?", 1)[0]


def recreate_database(url: str) -> None:
    """Drop and create the database ``url`` names (its sessions are ended first)."""
    import psycopg
    from psycopg import sql

    name = database_name(url)
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def ensure_database(url: str) -> None:
    """Create the database ``url`` names unless it exists."""
    import psycopg
    from psycopg import sql

    name = database_name(url)
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def bench_env(url: str, **more) -> dict:
    """The environment of a bench and of the servers it starts: its database, plain HTTP, a
    bench-only secret key when none is set, quiet logs."""
    env = dict(
        os.environ,
        DATABASE_URL=url,
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY", "bench-only-" + "x" * 50),
        FLOWDESK_HTTPS="0",
        FLOWDESK_LOG_LEVEL=os.environ.get("FLOWDESK_LOG_LEVEL", "WARNING"),
    )
    env.update({k: str(v) for k, v in more.items()})
    return env


def setup_django(url: str, *, migrate: bool = True, **env) -> None:
    """Point this process at ``url`` and start Django (migrating the database when asked)."""
    os.environ.update(bench_env(url, **env))
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)


def var_dir() -> Path:
    """Where benches leave their logs (var/, or FLOWDESK_BENCH_VAR: the smoke test's tmp dir)."""
    path = Path(os.environ.get("FLOWDESK_BENCH_VAR") or ROOT / "var")
    path.mkdir(parents=True, exist_ok=True)
    return path


def pct(values, p: float) -> float:
    """The ``p``-th percentile (nearest rank), NaN of nothing."""
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def percentiles(seconds: list[float]) -> str:
    """p50/p95/max of durations in seconds, in ms."""
    ms = [s * 1000 for s in seconds]
    return (
        f"p50 {statistics.median(ms):7.1f} ms   p95 {pct(ms, 95):7.1f} ms   "
        f"max {max(ms):7.1f} ms   (n={len(ms)})"
    )


def load_average() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


# --- definitions and people ------------------------------------------------------------------


def definition_file(name: str) -> dict:
    """A reference definition of processes/definitions (``"pizza.json"``)."""
    return json.loads((DEFINITIONS / name).read_text())


def approval_definition(key: str = "approval") -> dict:
    """A bonus approval: a human decision (managers, escalating to directors after two days),
    then a payout or a rejection notice. The inbox bench's process."""
    review = {
        "task_name": "approve_bonus",
        "task_type": "HUMAN",
        "assigned_to": "managers",
        "label": "Approve the bonus",
        "outcomes": ["approve", "reject"],
        "form": [
            {"name": "amount", "type": "decimal", "label": "Bonus amount", "required": True,
             "min": 0, "max": 100000},
            {"name": "pay_date", "type": "date"},
        ],
        "escalation": {"after": "P2D", "to": "directors", "notify": True},
        "business_status": "Bonus reviewed",
    }  # fmt: skip
    payout = [
        {"task_name": "record_payout", "handler": "flowdesk.noop", "business_status": "Paid",
         "condition": {"var": "approve_bonus.decision", "value": "approve"}},
        {"task_name": "notify_rejection", "handler": "flowdesk.noop",
         "business_status": "Rejected",
         "condition": {"var": "approve_bonus.decision", "value": "reject"}},
    ]  # fmt: skip
    return {
        "workflow_name": key.title(),
        "key": key,
        "stages": [
            {"stage_name": "REVIEW", "stage_order": 0, "tasks": [review]},
            {"stage_name": "PAYOUT", "stage_order": 1, "tasks": payout},
        ],
    }


def import_definition(data: dict, key: str | None = None):
    """Import and publish ``data`` through the engine (as an operator would)."""
    from processes import engine
    from processes.events import Actor

    definition, _ = engine.definition_import(data=data, key=key, actor=Actor.system("bench"))
    return definition


def person(username: str, roles=(), **fields):
    """A user in ``roles`` (groups, created as needed), made once."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    user, created = get_user_model().objects.get_or_create(username=username, defaults=fields)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    for name in roles:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user
