"""Batch start benchmark (run by hand, never in the test suite).

    .venv/bin/python bench/batch.py --n 10000 [--database-url postgresql://.../flowdesk_bench_batch]

POSTs one batch of N salary starts to /api/processes/batch/ through the whole Django stack
(middleware, token authentication, DRF parsing, the engine) in this process, on a fresh
PostgreSQL database, with a django-q2 ORM broker (the steps of the new instances are queued, not
run). Reports the wall time and CPU time of the request, the machine's load average, and the
process's peak RSS growth (with ``--tracemalloc`` also the peak of Python allocations); then sends the same batch again (every item
answers 200, nothing new) and reports the same for that.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

parser = argparse.ArgumentParser()
parser.add_argument("--n", type=int, default=10_000)
parser.add_argument(
    "--tracemalloc",
    action="store_true",
    help="also trace Python allocations (their peak); slows the run down two to three times",
)
parser.add_argument(
    "--database-url", default="postgresql://postgres@127.0.0.1:5432/flowdesk_bench_batch"
)
args = parser.parse_args()

os.environ.update(
    {
        "DATABASE_URL": args.database_url,
        "FLOWDESK_REDIS_URL": "",
        "FLOWDESK_LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "bench-only-secret-key"),
        "FLOWDESK_HTTPS": "0",
        "DJANGO_ALLOWED_HOSTS": "testserver",
    }
)

import psycopg  # noqa: E402

name = args.database_url.rsplit("/", 1)[1]
with psycopg.connect(args.database_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as c:
    c.execute(f'DROP DATABASE IF EXISTS "{name}"')
    c.execute(f'CREATE DATABASE "{name}"')
subprocess.run(
    [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True, env=os.environ
)

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.test import Client  # noqa: E402
from guardian.shortcuts import assign_perm  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402

from processes import engine  # noqa: E402
from processes.events import Actor  # noqa: E402
from processes.models import ProcessEvent, ProcessInstance, TaskInstance  # noqa: E402

data = json.loads((ROOT / "processes" / "definitions" / "salary.json").read_text())
definition, _ = engine.definition_import(data=data, actor=Actor.system("bench"))
user = get_user_model().objects.create_user("payroll")
assign_perm("processes.start_process", user, definition)
token = Token.objects.create(user=user)
client = Client(HTTP_AUTHORIZATION=f"Token {token.key}")

items = [
    {
        "business_key": f"SAL-2026-11-E{i:05d}",
        "input": {"employee_id": f"E{i:05d}", "period": "2026-11"},
    }
    for i in range(args.n)
]
body = json.dumps({"definition": "salary", "items": items})
print(f"{args.n} items, request body {len(body) / 1e6:.2f} MB")


def post(label):
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if args.tracemalloc:
        tracemalloc.start()
    load = os.getloadavg()[0]
    started = time.perf_counter()
    cpu = time.process_time()
    response = client.post("/api/processes/batch/", body, content_type="application/json")
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    peak = tracemalloc.get_traced_memory()[1] if args.tracemalloc else None
    tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert response.status_code == 200, response.content[:500]
    summary = response.json()["summary"]
    print(
        f"{label}: HTTP {response.status_code} {summary} in {seconds:.1f} s "
        f"({args.n / seconds:.0f} items/s; {cpu:.1f} s CPU in this process; load average "
        f"{load:.1f} on {os.cpu_count()} CPUs), peak RSS +{(rss_after - rss_before) / 1024:.0f} MB "
        f"(now {rss_after / 1024:.0f} MB)"
        + (f", Python allocations peak {peak / 1e6:.0f} MB" if peak is not None else "")
    )


post("first batch")
print(
    f"rows: {ProcessInstance.objects.count()} instances, {TaskInstance.objects.count()} tasks, "
    f"{ProcessEvent.objects.count()} events"
)
post("same batch again")
