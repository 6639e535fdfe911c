"""Admin benchmark (run by hand): the instance list and the dashboard on a big PostgreSQL table.

    .venv/bin/python bench/admin.py [--instances 1000000] [--events-days 30] [--runs 30]
                                    [--db flowdesk_bench_admin] [--fresh] [--explain]

It reuses its database when it already holds the data set (``--fresh`` drops and reloads it);
otherwise it (re)creates it, migrates, imports four definitions through the engine, then
bulk-inserts instances, their tasks (5 per instance) and, for the instances started in the last
``--events-days`` days, their events, with SQL ``generate_series`` (not the engine: a million
engine calls would take hours). Instances are spread over the last 365 days across the four
definitions; ~10 % running, 3 % failed (incidents), 2 % cancelled, the rest completed; running
instances wait on a human task, a third of them overdue.

Either way it applies new migrations and lets the dashboard's projection catch up with the
events (``processes.projections.catch_up``, as the schedule would; timed: a first run back-fills
it). ``--explain`` prints the plans of the overdue filter, the dashboard's SLA breaches and the
inbox's age sort (``task_open_human_due`` / ``task_open_human_role_age``).

Then, logged in as a superuser through Django's test client (the whole view: queries and
templates), it requests each page ``--runs`` times after one warm-up and prints p50/p95/max:

1. the instance list with its default filters (``/admin/processes/processinstance/``);
2. the list filtered by state=failed and by one definition (for information);
3. the dashboard of one definition over its default 7-day window.

Target: p95 <= 300 ms for 1 and 3. Each line ends with the machine's load average (1 min): the
figures are only comparable at a similar load. Events exist only for the recent window because the dashboard
reads only its window (through the (definition_key, created_at) index, then each instance's
events by (process_id, seq)); older events would only deepen those indexes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG = os.environ.get("FLOWDESK_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")

TASKS = [  # (stage, stage_index, name, type, queue, role)
    ("ORDER", 0, "confirm_order", "SERVICE", "confirm_order_queue", ""),
    ("PREPARE", 1, "make_food", "SERVICE", "make_food_queue", ""),
    ("PREPARE", 1, "assign_executive", "SERVICE", "assign_executive_queue", ""),
    ("PREPARE", 1, "confirm_delivery", "SERVICE", "confirm_delivery_queue", ""),
    ("DELIVER", 2, "deliver_food", "HUMAN", "deliver_food_queue", "delivery_executive"),
]


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"p50 {statistics.median(ordered) * 1000:6.1f} ms   p95 {p95 * 1000:6.1f} ms   "
        f"max {ordered[-1] * 1000:6.1f} ms"
    )


def recreate_database(name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def loaded(name: str, n: int) -> bool:
    """True when database ``name`` already holds the ``n``-instance data set."""
    import psycopg

    try:
        with psycopg.connect(f"{PG}/{name}") as conn:
            row = conn.execute(
                "SELECT count(*) FROM processes_processinstance WHERE started_by = 'bench'"
            ).fetchone()
    except psycopg.Error:
        return False
    return row[0] == n


def load(n: int, events_days: int) -> None:
    from django.db import connection

    from processes import engine
    from processes.events import Actor
    from tests.conftest import DEFINITIONS

    pizza = json.loads((DEFINITIONS / "pizza.json").read_text())
    ids = []
    for key in ("pizza", "pizza-east", "pizza-west", "pizza-north"):
        definition, _ = engine.definition_import(data=pizza, key=key, actor=Actor.system("bench"))
        ids.append(definition.pk)
    t0 = time.monotonic()
    values = ",".join(
        f"({i}, '{s}', {si}, '{name}', '{typ}', '{queue}', '{role}')"
        for i, (s, si, name, typ, queue, role) in enumerate(TASKS)
    )
    with connection.cursor() as c:
        c.execute("SET synchronous_commit = off")
        c.execute(
            """
            CREATE TEMP TABLE defs AS
            SELECT row_number() OVER (ORDER BY id) - 1 AS k, id, key
            FROM processes_processdefinition
            """
        )
        c.execute(
            """
            INSERT INTO processes_processinstance
                (id, definition_id, definition_key, business_key, state, business_status,
                 current_stage, variables, last_seq, started_by, created_at, updated_at,
                 completed_at)
            SELECT md5('fd' || i)::uuid, d.id, d.key, 'ORDER-' || i,
                CASE WHEN i %% 100 < 10 THEN 'running' WHEN i %% 100 < 13 THEN 'failed'
                     WHEN i %% 100 < 15 THEN 'cancelled' ELSE 'completed' END,
                CASE WHEN i %% 100 < 15 THEN 'FOOD ON THE WAY' ELSE 'FOOD DELIVERED' END,
                CASE WHEN i %% 100 < 10 THEN 'DELIVER' WHEN i %% 100 < 15 THEN 'PREPARE'
                     ELSE 'DELIVER' END,
                '{}'::jsonb, 17, 'bench',
                now() - (i::float8 / %s) * interval '365 days',
                now() - (i::float8 / %s) * interval '365 days' + interval '2 hours',
                CASE WHEN i %% 100 >= 10 THEN now() - (i::float8 / %s) * interval '365 days'
                     + interval '2 hours' END
            FROM generate_series(1, %s) AS i
            JOIN defs d ON d.k = i %% 4
            """,
            [n, n, n, n],
        )
        print(f"instances: {time.monotonic() - t0:.0f} s", flush=True)
        c.execute(
            f"""
            INSERT INTO processes_taskinstance
                (process_id, stage, stage_index, name, type, handler, task_queue, state,
                 attempts, execution, result, last_error, candidate_role, due_at, scheduled_at,
                 started_at, finished_at, created_at)
            SELECT p.id, t.stage, t.stage_index, t.name, t.type, '', t.queue,
                CASE WHEN p.state = 'completed' THEN 'completed'
                     WHEN p.state = 'failed' AND t.name = 'confirm_delivery' THEN 'failed'
                     WHEN p.state = 'cancelled' AND t.stage_index >= 1 THEN 'cancelled'
                     WHEN p.state = 'running' AND t.type = 'HUMAN' THEN 'scheduled'
                     WHEN p.state = 'running' THEN 'completed'
                     WHEN t.stage_index < 1 THEN 'completed'
                     WHEN t.stage_index = 1 AND t.name <> 'confirm_delivery' THEN 'completed'
                     ELSE 'pending' END,
                1, 1, NULL, '', t.role,
                CASE WHEN t.type = 'HUMAN' THEN p.created_at + interval '1 hour'
                     + CASE WHEN ('x' || substr(p.id::text, 1, 2))::bit(8)::int % 3 = 0
                            THEN interval '0' ELSE interval '400 days' END END,
                p.created_at + t.i * interval '20 minutes',
                p.created_at + t.i * interval '20 minutes' + interval '1 minute',
                p.created_at + (t.i + 1) * interval '20 minutes',
                p.created_at
            FROM processes_processinstance p
            CROSS JOIN (VALUES {values}) AS t(i, stage, stage_index, name, type, queue, role)
            """
        )
        print(f"+ tasks: {time.monotonic() - t0:.0f} s", flush=True)
        # Events for the recent instances: started, then per task scheduled/started/completed
        # (a human task has no "started"); timings vary with the instance and the hour.
        c.execute(
            """
            INSERT INTO processes_processevent
                (process_id, seq, type, task_id, task_name, actor_type, actor_label,
                 created_at, data)
            SELECT p.id, 1, 'process_started', NULL, '', 'system', 'bench', p.created_at, '{}'
            FROM processes_processinstance p
            WHERE p.created_at >= now() - %s * interval '1 day'
            """,
            [events_days],
        )
        c.execute(
            """
            INSERT INTO processes_processevent
                (process_id, seq, type, task_id, task_name, actor_type, actor_label,
                 created_at, data)
            SELECT t.process_id, 2 + t.ord * 3 + k.k,
                CASE k.k WHEN 0 THEN 'task_scheduled' WHEN 1 THEN 'task_started'
                         ELSE 'task_completed' END,
                t.id, t.name, 'worker', 'bench',
                t.scheduled_at + k.k * (1 + (t.id %% 7)) * interval '3 minutes'
                    + CASE WHEN t.type = 'HUMAN' AND k.k = 2
                           THEN (t.id %% 11) * interval '1 hour' ELSE interval '0' END,
                '{}'
            FROM (
                SELECT ti.*, row_number() OVER (PARTITION BY ti.process_id ORDER BY ti.id) - 1
                    AS ord
                FROM processes_taskinstance ti
                JOIN processes_processinstance p ON p.id = ti.process_id
                WHERE p.created_at >= now() - %s * interval '1 day'
            ) t
            CROSS JOIN generate_series(0, 2) AS k(k)
            WHERE t.state = 'completed' AND NOT (t.type = 'HUMAN' AND k.k = 1)
               OR t.state <> 'completed' AND k.k = 0
            """,
            [events_days],
        )
        print(f"+ events: {time.monotonic() - t0:.0f} s", flush=True)
    with connection.cursor() as c:
        c.execute("VACUUM ANALYZE")
    with connection.cursor() as c:
        for table in ("processinstance", "taskinstance", "processevent"):
            c.execute(f"SELECT count(*) FROM processes_{table}")
            print(f"  processes_{table}: {c.fetchone()[0]:,} rows")
    print(f"loaded in {time.monotonic() - t0:.0f} s", flush=True)


def measure(runs: int) -> dict[str, list[float]]:
    from django.contrib.auth import get_user_model
    from django.db import connections
    from django.test import Client

    user, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    pages = {
        "instance list (default)": "/admin/processes/processinstance/",
        "instance list ?state=failed&definition": (
            "/admin/processes/processinstance/?state__exact=failed&definition_key=pizza"
        ),
        "dashboard pizza, 7 days": "/admin/processes/processinstance/dashboard/?key=pizza",
    }
    results = {}
    for label, url in pages.items():
        response = client.get(url)  # warm-up
        assert response.status_code == 200, (url, response.status_code)
        samples = []
        for _ in range(runs):
            # Django's test client keeps one connection for every request; in production each
            # request opens its own (CONN_MAX_AGE=0): do the same, and count the connect.
            connections.close_all()
            t = time.perf_counter()
            response = client.get(url)
            samples.append(time.perf_counter() - t)
            assert response.status_code == 200
        results[label] = samples
        print(f"{label:42s} {percentiles(samples)}   load {os.getloadavg()[0]:.2f}", flush=True)
    return results


def catch_up_projection() -> None:
    from django.db import connection

    from processes import projections

    t = time.monotonic()
    result = projections.catch_up(budget_seconds=3600)
    print(
        f"projection caught up: {result['added']:,} rows added in {result['passes']} passes,"
        f" {time.monotonic() - t:.1f} s",
        flush=True,
    )
    with connection.cursor() as c:
        c.execute("ANALYZE processes_taskexecution")


def _pg_type(value) -> str:
    """The type psycopg would send ``value`` as (SQL-level PREPARE can't infer them all)."""
    import datetime as dt

    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "bigint"
    if isinstance(value, dt.datetime):
        return "timestamptz"
    return "text"


def explain() -> None:
    """The plans of the queries the new partial indexes are for."""
    from django.db import connection
    from django.utils import timezone
    from psycopg.sql import Literal

    from processes import dashboard
    from processes.models import ProcessInstance, TaskInstance, TaskState, TaskType

    now = timezone.now()
    overdue_filter = (
        ProcessInstance.objects.filter(dashboard.has_overdue_task(now))
        .order_by("-created_at")
        .values_list("pk", flat=True)[:50]
    )
    breaches = (
        dashboard.overdue_human_tasks(now)
        .filter(process__definition_key="pizza")
        .order_by("due_at", "id")
        .values_list("pk", flat=True)[:20]
    )
    age_sort = (
        TaskInstance.objects.filter(
            type=TaskType.HUMAN, state=TaskState.SCHEDULED, candidate_role="delivery_executive"
        )
        .order_by("scheduled_at", "id")
        .values_list("pk", "due_at", "scheduled_at")[:50]
    )
    for label, qs in (
        ("overdue filter (instance list ?overdue=yes)", overdue_filter),
        ("dashboard SLA breaches", breaches),
        ("inbox, one role, oldest first", age_sort),
    ):
        sql, params = qs.query.sql_with_params()
        with connection.cursor() as c:
            c.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + sql, params)
            plan = "\n    ".join(row[0] for row in c.fetchall())
        print(f"-- {label}\n    {plan}", flush=True)
        # FLOWDESK_DB_PREPARE: after 5 runs PostgreSQL may plan a prepared statement once for
        # any parameters (a generic plan); show that plan too, forced, to see it still uses the
        # partial indexes
        pieces = sql.split("%s")
        numbered = "".join(
            p + (f"${i + 1}" if i < len(pieces) - 1 else "") for i, p in enumerate(pieces)
        )
        with connection.cursor() as c:
            c.execute("SET plan_cache_mode = force_generic_plan")
            types = [_pg_type(value) for value in params]
            c.execute(f"PREPARE bench_generic ({', '.join(types)}) AS {numbered}")
            # EXPLAIN EXECUTE takes no bind parameters: the arguments go in as literals
            args = ", ".join(
                f"{Literal(str(v) if isinstance(v, str) else v).as_string(connection.connection)}"
                f"::{t}"
                for v, t in zip(params, types, strict=True)
            )
            c.execute(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) EXECUTE bench_generic({args})")
            plan = "\n    ".join(row[0] for row in c.fetchall())
            c.execute("DEALLOCATE bench_generic")
            c.execute("RESET plan_cache_mode")
        print(f"-- {label}, generic plan (as prepared)\n    {plan}", flush=True)
        # what PostgreSQL really does (plan_cache_mode=auto): the statement is prepared after
        # FLOWDESK_DB_PREPARE runs, and a generic plan is kept only if its estimate is no worse
        took = []
        for _ in range(12):
            started = time.perf_counter()
            list(qs.all())
            took.append(f"{1000 * (time.perf_counter() - started):.0f}")
        print(f"-- {label}, 12 runs through Django (ms): {' '.join(took)}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=1_000_000)
    parser.add_argument("--events-days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--db", default="flowdesk_bench_admin")
    parser.add_argument("--fresh", action="store_true", help="drop and reload the database")
    parser.add_argument("--keep", action="store_true", help="(the default now) reuse the data")
    parser.add_argument("--explain", action="store_true", help="print the plans of the filters")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    os.environ["DATABASE_URL"] = f"{PG}/{args.db}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-" + "x" * 50)
    os.environ.setdefault("FLOWDESK_LOG_LEVEL", "WARNING")
    reuse = not args.fresh and loaded(args.db, args.instances)
    if not reuse:
        recreate_database(args.db)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)  # also brings a reused database up to date
    if reuse:
        print(f"reusing {args.db} ({args.instances:,} instances)", flush=True)
    else:
        load(args.instances, args.events_days)
    catch_up_projection()
    if args.explain:
        explain()
    print(f"load average {os.getloadavg()}", flush=True)
    results = measure(args.runs)
    ok = all(
        sorted(s)[min(len(s) - 1, round(0.95 * (len(s) - 1)))] <= 0.3
        for label, s in results.items()
        if "default" in label or "dashboard" in label
    )
    print("target p95 <= 300 ms:", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
