"""Inbox benchmark (run by hand, never in the test suite).

Seeds its own PostgreSQL database with bulk SQL (generate_series, not the engine one by one):
N process instances, of which M have an open human task spread over R roles (the rest are
completed, with a decided task), the guardian group permissions of the open tasks, and a
manager in 3 roles. Then measures, through Django's full request stack (test Client: URL
routing, middleware, session, auth, template):

- GET /inbox/ (first page of "My roles", and the other tabs) p50/p95;
- POST a decision (engine.task_decide: lock, complete, schedule the next task, enqueue it) p50/p95;

and prints the EXPLAIN (ANALYZE, BUFFERS) plans of the inbox page's queries.

    .venv/bin/python bench/inbox.py                       # 1,000,000 processes, 200,000 open tasks
    .venv/bin/python bench/inbox.py --processes 100000 --open 20000   # smaller
    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/flowdesk_bench_inbox (default)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/flowdesk_bench_inbox"


def ensure_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'create database "{name}"')


def setup(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-" + "x" * 50)
    os.environ["FLOWDESK_REDIS_URL"] = ""  # ORM broker: the enqueue is a row in the same database
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def report(label: str, timings: list[float]) -> None:
    ms = [t * 1000 for t in timings]
    print(
        f"{label:<38} n={len(ms):<4} p50={statistics.median(ms):7.2f} ms  "
        f"p95={percentile(ms, 95):7.2f} ms  max={max(ms):7.2f} ms"
    )


def seed(n_processes: int, n_open: int, n_roles: int) -> None:
    from django.contrib.auth.models import Group
    from django.db import connection

    from processes import engine
    from processes.events import Actor
    from processes.models import ProcessInstance, TaskInstance
    from tasks_inbox import permissions
    from tasks_inbox.models import TaskGroupObjectPermission
    from tests.factories import UserFactory
    from tests.tasks_inbox.conftest import approval_definition

    if ProcessInstance.objects.filter(definition_key="bench").count() == n_processes:
        print(f"reusing the seeded data ({n_processes:,} processes)")
        return
    t0 = time.monotonic()
    definition, _ = engine.definition_import(
        data=approval_definition(key="bench"), actor=Actor.system("bench")
    )
    roles = [f"role{i:02d}" for i in range(n_roles)]
    for name in roles:
        Group.objects.get_or_create(name=name)
    UserFactory(username="boss", roles=roles[:3])
    for i in range(20):
        UserFactory(username=f"member{i}", roles=[roles[i % n_roles]])
    boss_id = UserFactory(username="boss").pk
    perm = permissions.permission_id()
    p, t = ProcessInstance._meta.db_table, TaskInstance._meta.db_table
    gp = TaskGroupObjectPermission._meta.db_table
    with connection.cursor() as c:
        c.execute(f"truncate {gp}, {t} cascade")
        c.execute("alter table processes_processevent disable trigger user")
        c.execute(f"delete from processes_processevent; delete from {p}")
        c.execute("alter table processes_processevent enable trigger user")
        c.execute(
            "create temp table seed as select g, gen_random_uuid() as id "
            "from generate_series(1, %s) g",
            [n_processes],
        )
        c.execute(
            f"""
            insert into {p} (id, definition_id, definition_key, business_key, state,
                business_status, current_stage, variables, last_seq, started_by,
                created_at, updated_at, completed_at)
            select s.id, %s, 'bench', 'EMP-' || lpad(s.g::text, 7, '0'),
                case when s.g <= %s then 'running' else 'completed' end,
                '', case when s.g <= %s then 'REVIEW' else 'PAYOUT' end,
                jsonb_build_object('employee', 'Employee ' || s.g,
                    'salary_base', jsonb_build_object('amount', 3000 + s.g %% 2000),
                    'bonus', 500 + s.g %% 1500),
                0, 'bench', now() - (s.g %% 5000) * interval '1 minute',
                now(), case when s.g > %s then now() end
            from seed s
            """,
            [definition.pk, n_open, n_open, n_open],
        )
        print(f"  processes: {time.monotonic() - t0:6.1f} s")
        c.execute(
            f"""
            insert into {t} (process_id, stage, stage_index, name, type, handler, task_queue,
                state, attempts, execution, last_error, candidate_role, assignee_id,
                claimed_by_id, decided_by_id, due_at, wake_at, scheduled_at, finished_at,
                created_at, result)
            select s.id, 'REVIEW', 0, 'approve_bonus', 'HUMAN', '', '',
                case when s.g <= %s then 'scheduled' else 'completed' end, 0, 1, '',
                'role' || lpad((s.g %% %s)::text, 2, '0'), null, null,
                case when s.g > %s and s.g %% 1000 = 0 then %s end,
                now() + ((s.g %% 240) - 40) * interval '1 hour',
                case when s.g <= %s then now() + ((s.g %% 240) - 40 + 10000) * interval '1 hour' end,
                now() - (s.g %% 5000) * interval '1 minute',
                case when s.g > %s then now() - (s.g %% 5000) * interval '1 second' end,
                now() - (s.g %% 5000) * interval '1 minute',
                case when s.g > %s then '{{"decision": "approve", "amount": 100}}'::jsonb end
            from seed s
            """,
            [n_open, n_roles, n_open, boss_id, n_open, n_open, n_open],
        )
        for index, name in ((1, "record_payout"), (2, "notify_rejection")):
            c.execute(
                f"""
                insert into {t} (process_id, stage, stage_index, name, type, handler, task_queue,
                    state, attempts, execution, last_error, candidate_role, created_at)
                select s.id, 'PAYOUT', %s, %s, 'SERVICE', 'flowdesk.noop', '', 'pending', 0, 1,
                    '', '', now()
                from seed s where s.g <= %s
                """,
                [index, name, n_open],
            )
        print(f"  tasks:     {time.monotonic() - t0:6.1f} s")
        c.execute(
            f"""
            insert into {gp} (content_object_id, group_id, permission_id)
            select t.id, g.id, %s from {t} t join auth_group g on g.name = t.candidate_role
            where t.state = 'scheduled' and t.type = 'HUMAN'
            """,
            [perm],
        )
        print(f"  perms:     {time.monotonic() - t0:6.1f} s")
        c.execute("drop table seed")
        c.execute(f"vacuum analyze {p}")
        c.execute(f"vacuum analyze {t}")
        c.execute(f"vacuum analyze {gp}")
    print(
        f"seeded {n_processes:,} processes, {n_open:,} open tasks in {time.monotonic() - t0:.0f} s"
    )


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
    parser.add_argument(
        "--reconnect",
        action="store_true",
        help="open a new database connection per request (CONN_MAX_AGE=0, the dev default)",
    )
    args = parser.parse_args()
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    ensure_database(url)
    setup(url)

    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection, connections
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from processes.models import TaskInstance

    settings.ALLOWED_HOSTS = ["*"]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast seeding
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
    print(f"\nmanager 'boss' in 3 roles; {args.requests} requests each after 10 warm-up\n")
    for label, path in pages.items():
        for _ in range(10):
            assert client.get(path).status_code == 200
        timings = []
        n = args.requests if "first page" in label else max(20, args.requests // 4)
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
        .values_list("id", flat=True)[: args.decisions + 10]
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
        if i >= 10:
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
