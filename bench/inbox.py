"""Inbox benchmark (run by hand; tests/test_benches.py runs it tiny): the inbox at 1M instances.

Seeds its database through bench/seeding.py (bulk SQL, not the engine one by one): N instances
of a bonus approval, of which M wait on their human decision spread over R roles (the rest
completed, some decided by the manager), a manager "boss" in 3 roles and 20 members. Then
measures, through Django's full request stack (test Client: URL routing, middleware, session,
auth, template):

- GET /inbox/ (first page of "My roles", and the other tabs) p50/p95;
- POST a decision (engine.task_decide: lock, complete, schedule the next task, enqueue it) p50/p95;

and prints the EXPLAIN (ANALYZE, BUFFERS) plans of the inbox page's queries. Target: the first
page and the decision p95 <= 50 ms. It reuses its database when that holds the data set
(``--fresh`` drops and reloads it).

    .venv/bin/python bench/inbox.py                       # 1,000,000 processes, 200,000 open tasks
    .venv/bin/python bench/inbox.py --processes 100000 --open 20000   # smaller
    .venv/bin/python bench/inbox.py --processes 200 --open 40 --roles 5 --requests 5 \
        --decisions 3 --warm-up 1                        # the smoke test's size
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from common import (
    add_database_options,
    approval_definition,
    ensure_database,
    import_definition,
    load_average,
    pct,
    person,
    recreate_database,
    setup_django,
)

KEY = "bench"


def report(label: str, timings: list[float]) -> None:
    ms = [t * 1000 for t in timings]
    print(
        f"{label:<38} n={len(ms):<4} p50={statistics.median(ms):7.2f} ms  "
        f"p95={pct(ms, 95):7.2f} ms  max={max(ms):7.2f} ms  {load_average()}",
        flush=True,
    )


def seed(n_processes: int, n_open: int, n_roles: int) -> None:
    """The approval definition, ``n_processes`` instances of it (``n_open`` waiting on their
    decision, over ``n_roles`` roles; the rest completed), a manager "boss" in 3 roles who
    decided some of the completed ones, and 20 members (bench/seeding.py)."""
    import seeding
    from django.db import connection

    found = seeding.seeded([KEY])
    if found == n_processes:
        print(f"reusing the seeded data ({n_processes:,} processes)")
        seeding.vacuum("processes_taskinstance", "processes_processinstance")  # (a migration since)
        return
    if found:
        sys.exit(f"the database holds {found:,} bench processes, not {n_processes:,}: --fresh")
    running = round(100 * n_open / n_processes)
    if running * n_processes != 100 * n_open:
        sys.exit("--open must be a whole percentage of --processes")
    definition = import_definition(approval_definition(key=KEY))
    roles = [f"role{i:02d}" for i in range(n_roles)]
    boss = person("boss", roles=roles[:3])
    for i in range(20):
        person(f"member{i}", roles=[roles[i % n_roles]])
    with connection.cursor() as c:
        c.execute("SET synchronous_commit = off")
    seeding.seed_processes(
        [definition],
        n_processes,
        tag="inbox",
        prefix="EMP-",
        mix=seeding.Mix(running=running, failed=0, cancelled=0),
        days=4,  # a few days of work: the open tasks are recent
        events_days=0,
        roles=roles,
        decided_by=boss.pk,
        variables="jsonb_build_object('employee', 'Employee ' || i, 'salary_base', "
        "jsonb_build_object('amount', 3000 + i % 2000), 'bonus', 500 + i % 1500)",
    )
    seeding.vacuum("processes_processinstance", "processes_taskinstance")


def explain(sql: str, params) -> str:
    from django.db import connection

    with connection.cursor() as c:
        c.execute("explain (analyze, buffers, costs off) " + sql, params)
        return "\n".join("    " + row[0] for row in c.fetchall())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=1_000_000)
    parser.add_argument("--open", type=int, default=200_000)
    parser.add_argument("--roles", type=int, default=50)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--decisions", type=int, default=200)
    parser.add_argument("--warm-up", type=int, default=10, help="requests before the timed ones")
    add_database_options(parser, "flowdesk_bench_inbox")
    parser.add_argument("--fresh", action="store_true", help="drop and reload the database")
    parser.add_argument(
        "--reconnect",
        action="store_true",
        help="open a new database connection per request (CONN_MAX_AGE=0, the dev default)",
    )
    args = parser.parse_args()
    if args.fresh and args.keep_database:
        parser.error("--fresh drops the database, --keep-database never does: choose one")
    if args.fresh:
        recreate_database(args.database_url)
    elif not args.keep_database:
        ensure_database(args.database_url)
    # ORM broker: the enqueue of the next step is a row in the same database
    setup_django(args.database_url, FLOWDESK_REDIS_URL="")

    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection, connections
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from processes.models import TaskInstance

    settings.ALLOWED_HOSTS = ["*"]
    if not args.reconnect:
        # Production keeps connections open (CONN_MAX_AGE); measure the request, not the connect.
        connections["default"].settings_dict["CONN_MAX_AGE"] = None
    seed(args.processes, args.open, args.roles)

    boss = get_user_model().objects.get(username="boss")
    client = Client()
    client.force_login(boss)

    pages = {
        "GET /inbox/ (My roles, first page)": "/inbox/",
        "GET /inbox/?tab=roles&sort=age": "/inbox/?tab=roles&sort=age",
        "GET /inbox/?tab=roles&page=40": "/inbox/?tab=roles&page=40",
        "GET /inbox/?tab=overdue": "/inbox/?tab=overdue",
        "GET /inbox/?tab=assigned": "/inbox/?tab=assigned",
        "GET /inbox/?tab=done": "/inbox/?tab=done",
        "GET /inbox/?q=EMP-00012": "/inbox/?q=EMP-00012",
    }
    print(
        f"\nmanager 'boss' in 3 roles; {args.requests} requests each after {args.warm_up} warm-up\n"
    )
    for label, path in pages.items():
        for _ in range(args.warm_up):
            assert client.get(path).status_code == 200
        timings = []
        n = args.requests if "first page" in label else max(1, args.requests // 4)
        for _ in range(n):
            t0 = time.perf_counter()
            response = client.get(path)
            timings.append(time.perf_counter() - t0)
            assert response.status_code == 200
        report(label, timings)

    # Decisions: POST -> engine -> next task scheduled and queued (django-q2 ORM broker row).
    open_ids = list(
        TaskInstance.objects.filter(
            state="scheduled", type="HUMAN", candidate_role__in=["role00", "role01", "role02"]
        )
        .order_by("-id")
        .values_list("id", flat=True)[: args.decisions + args.warm_up]
    )
    timings = []
    for i, task_id in enumerate(open_ids):
        t0 = time.perf_counter()
        response = client.post(
            f"/inbox/tasks/{task_id}/decide/",
            {"decision": "approve" if i % 2 else "reject", "amount": "100", "comment": "bench"},
        )
        elapsed = time.perf_counter() - t0
        assert response.status_code == 302 and "tab=done" in response["Location"], response
        if i >= args.warm_up:
            timings.append(elapsed)
    report("POST decision (-> next task queued)", timings)
    from django_q.models import OrmQ

    print(f"  queued steps in the ORM broker: {OrmQ.objects.count()}")

    print("\nEXPLAIN of the first inbox page's queries (My roles):\n")
    with CaptureQueriesContext(connection) as ctx:
        client.get("/inbox/")
    for q in ctx.captured_queries:
        sql = q["sql"]
        if "processes_taskinstance" not in sql:
            print(f"  -- {sql[:110]}")
            continue
        print(f"  -- {sql[:160]}...")
        print(explain(sql, None))
    print("\nEXPLAIN of the overdue tab and the search:\n")
    for path in ("/inbox/?tab=overdue", "/inbox/?q=EMP-00012"):
        with CaptureQueriesContext(connection) as ctx:
            client.get(path)
        for q in ctx.captured_queries:
            if "processes_taskinstance" in q["sql"] and "COUNT" not in q["sql"]:
                print(f"  -- {path}")
                print(explain(q["sql"], None))


if __name__ == "__main__":
    main()
