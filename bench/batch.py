"""Batch start benchmark (run by hand, never in the test suite).

    .venv/bin/python bench/batch.py --n 10000 [--database-url postgresql://.../flowdesk_bench_batch]
    .venv/bin/python bench/batch.py --n 5 --keep-database --database-url ...  # the smoke test

POSTs one batch of N salary starts to /api/processes/batch/ through the whole Django stack
(middleware, token authentication, DRF parsing, the engine) in this process, on a fresh
PostgreSQL database (the one given, as it is, with ``--keep-database``), with a django-q2 ORM
broker (the steps of the new instances are queued, not run). Reports the wall time and CPU time
of the request, the machine's load average, and the process's peak RSS growth (with
``--tracemalloc`` also the peak of Python allocations); then sends the same batch again (every
item answers 200, nothing new) and reports the same for that.
"""

import argparse
import json
import os
import resource
import time
import tracemalloc

from common import (
    ROOT,
    add_database_options,
    import_definition,
    person,
    recreate_database,
    setup_django,
)

parser = argparse.ArgumentParser()
parser.add_argument("--n", type=int, default=10_000)
parser.add_argument(
    "--tracemalloc",
    action="store_true",
    help="also trace Python allocations (their peak); slows the run down two to three times",
)
add_database_options(parser, "flowdesk_bench_batch")
args = parser.parse_args()

if not args.keep_database:
    recreate_database(args.database_url)
setup_django(args.database_url, FLOWDESK_REDIS_URL="", DJANGO_ALLOWED_HOSTS="testserver")

from django.test import Client  # noqa: E402
from guardian.shortcuts import assign_perm  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402

from processes.models import ProcessEvent, ProcessInstance, TaskInstance  # noqa: E402

data = json.loads((ROOT / "processes" / "definitions" / "salary.json").read_text())
definition = import_definition(data)
user = person("payroll")
assign_perm("processes.start_process", user, definition)
token = Token.objects.get_or_create(user=user)[0]
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
