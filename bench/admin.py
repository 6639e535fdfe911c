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
3. the dashboard of one definition over its default 7-day window (with its trends section);
4. the trends of one definition by month and by week over their default 12 periods
   (``GET /api/stats/trends/``, ``processes.trends``): first once "cold" (no closed period
   stored yet, each computed and stored), then as usual (the closed periods read back, the
   current one computed);
5. the operations home (``/admin/``: every figure one query; target p95 <= 200 ms);
6. search by business data: ``/api/processes/?q=`` with part of a business key and with a
   name (target p95 <= 100 ms), and the admin list's search box (for information).

Target: p95 <= 300 ms for 1, 3 and 4, <= 200 ms for 5, <= 100 ms for 6's API searches. Each line ends with the machine's load average (1 min): the
figures are only comparable at a similar load. Events exist only for the recent window because the dashboard
reads only its window (through the (definition_key, created_at) index, then each instance's
events by (process_id, seq)); older events would only deepen those indexes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from common import (
    add_database_options,
    database_name,
    definition_file,
    import_definition,
    load_average,
    pct,
    percentiles,
    recreate_database,
    setup_django,
)

KEYS = ("pizza", "pizza-east", "pizza-west", "pizza-north")


def loaded(n: int) -> int:
    """How many of the bench's instances the database holds (0: none, or not migrated yet)."""
    import seeding
    from django.db import connection

    if "processes_processinstance" not in connection.introspection.table_names():
        return 0
    return seeding.seeded(KEYS)


def load(n: int, events_days: int) -> None:
    """Four copies of the pizza definition, then ``n`` instances over them (bench/seeding.py)."""
    import seeding
    from django.db import connection

    pizza = definition_file("pizza.json")
    # a component name belongs to one key: each copy gets its own
    definitions = [
        import_definition({**pizza, "component_name": key.upper()}, key=key) for key in KEYS
    ]
    with connection.cursor() as c:
        c.execute("SET synchronous_commit = off")
    seeding.seed_processes(definitions, n, tag="fd", prefix="ORDER-", events_days=events_days)
    seeding.vacuum("processes_processinstance", "processes_taskinstance", "processes_processevent")
    with connection.cursor() as c:
        for table in ("processinstance", "taskinstance", "processevent"):
            c.execute(f"SELECT count(*) FROM processes_{table}")
            print(f"  processes_{table}: {c.fetchone()[0]:,} rows")


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
        # the trends over the last 12 months / 12 weeks, through the API (session auth)
        "trends pizza, by month (API)": "/api/stats/trends/?definition=pizza&by=month",
        "trends pizza, by week (API)": "/api/stats/trends/?definition=pizza&by=week",
        "operations home /admin/": "/admin/",
        "search API ?q=<part of a key>": f"/api/processes/?q={search_key_part()}",
        "search API ?q=<a name>": "/api/processes/?q=Name4711",
        "search admin list ?q=<part of a key>": (
            f"/admin/processes/processinstance/?q={search_key_part()}"
        ),
    }
    results = {}
    trends_cold(client, pages)
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
        print(f"{label:42s} {percentiles(samples)}   {load_average()}", flush=True)
    return results


def trends_cold(client, pages: dict) -> None:
    """One request per trends page with no stored period: each closed period computed (and
    stored) once, as after a deployment or for a definition nobody looked at yet."""
    from processes.models import TrendPeriod

    TrendPeriod.objects.all().delete()
    for label, url in pages.items():
        if label.startswith("trends"):
            t = time.perf_counter()
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)
            took = 1000 * (time.perf_counter() - t)
            print(f"{label + ', cold':42s} {took:7.1f} ms (once)   {load_average()}", flush=True)


def search_key_part() -> str:
    """Part of one business key, lower case: the 4711th instance's ("rder-0004711" of
    ORDER-0004711), or of the last one in a smaller data set."""
    import seeding

    return f"rder-{min(4711, seeding.seeded(KEYS)):07d}"


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
    add_database_options(parser, "flowdesk_bench_admin")
    parser.add_argument("--db", help="the database's name on FLOWDESK_BENCH_PG (old spelling)")
    parser.add_argument("--fresh", action="store_true", help="drop and reload the database")
    parser.add_argument("--keep", action="store_true", help="(the default now) reuse the data")
    parser.add_argument("--explain", action="store_true", help="print the plans of the filters")
    args = parser.parse_args()
    url = args.database_url
    if args.db:
        url = f"{url.rsplit('/', 1)[0]}/{args.db}"
    if args.fresh and args.keep_database:
        parser.error("--fresh drops the database, --keep-database never does: choose one")

    if args.fresh:
        recreate_database(url)
    elif not args.keep_database:
        from common import ensure_database

        ensure_database(url)
    setup_django(url)  # also brings a reused database up to date
    found = loaded(args.instances)
    if found == args.instances:
        print(f"reusing {database_name(url)} ({args.instances:,} instances)", flush=True)
        import seeding

        seeding.vacuum("processes_taskinstance", "processes_processinstance")  # (a migration since)
    elif found:
        sys.exit(
            f"{database_name(url)} holds {found:,} bench instances, not {args.instances:,}: "
            "run with --fresh (or another --database-url)"
        )
    else:
        load(args.instances, args.events_days)
    catch_up_projection()
    if args.explain:
        explain()
    print(f"load average {os.getloadavg()}", flush=True)
    results = measure(args.runs)
    targets = {
        "instance list": 0.3,
        "dashboard": 0.3,
        "trends": 0.3,
        "operations home": 0.2,
        "search API": 0.1,
    }
    for word, target in targets.items():
        ok = all(pct(s, 95) <= target for label, s in results.items() if word in label)
        print(f"target p95 <= {target * 1000:.0f} ms ({word}):", "met" if ok else "NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
