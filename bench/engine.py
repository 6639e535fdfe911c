"""Engine benchmark (run by hand, never in the test suite).

    .venv/bin/python bench/engine.py --n 2000 --broker orm
    .venv/bin/python bench/engine.py --n 2000 --broker redis
    .venv/bin/python bench/engine.py --n 2000 --broker redis --supervised

Runs N processes of a 4-task definition (2 parallel no-op service steps, a join, a final step) on
PostgreSQL with a real 2-worker qcluster; reports processes/s, service tasks/s, SQL queries per
service task (engine and broker, measured in-process), start->completion latency p50/p99 and
worker RSS at start and at the end. ``--supervised`` runs the cluster under the worker supervisor
(``manage.py workers``: heartbeat every FLOWDESK_HEARTBEAT_SECONDS, progress notes, heartbeat
lane) instead of a bare ``manage.py qcluster``, to measure what supervision costs.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

parser = argparse.ArgumentParser()
parser.add_argument("--n", type=int, default=2000)
parser.add_argument("--broker", choices=["orm", "redis"], default="orm")
parser.add_argument("--workers", type=int, default=2)
parser.add_argument(
    "--database-url", default="postgresql://postgres@127.0.0.1:5432/flowdesk_bench_engine"
)
parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/3")
parser.add_argument(
    "--supervised", action="store_true", help="run manage.py workers instead of manage.py qcluster"
)
parser.add_argument(
    "--no-eager", action="store_true", help="FLOWDESK_EAGER_STEPS=0: every step through the queue"
)
args = parser.parse_args()

env = {
    "DATABASE_URL": args.database_url,
    "FLOWDESK_Q_NAME": f"bench{os.getpid()}",
    "FLOWDESK_Q_WORKERS": str(args.workers),
    "FLOWDESK_Q_POLL": "0.05",
    # no recycling during the run: RSS must stay flat on its own, not because q2 replaces workers
    "FLOWDESK_Q_RECYCLE": "10000000",
    "FLOWDESK_REDIS_URL": args.redis_url if args.broker == "redis" else "",
    "FLOWDESK_LOG_LEVEL": "WARNING",
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "FLOWDESK_EAGER_STEPS": "0" if args.no_eager else "1",
    "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "bench-only-" + "x" * 50),
}
os.environ.update(env)

import psycopg  # noqa: E402

name = args.database_url.rsplit("/", 1)[1]
with psycopg.connect(args.database_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as c:
    if not c.execute("SELECT 1 FROM pg_database WHERE datname=%s", [name]).fetchone():
        c.execute(f'CREATE DATABASE "{name}"')
subprocess.run(
    [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True, env=os.environ
)

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from processes import engine, worker  # noqa: E402
from processes.events import Actor  # noqa: E402
from processes.models import ProcessInstance, TaskInstance  # noqa: E402

DEFINITION = {
    "workflow_name": "Bench",
    "key": "bench",
    "stages": [
        {
            "stage_name": "CALC",
            "stage_order": 1,
            "tasks": [
                {"task_name": "left", "handler": "flowdesk.noop"},
                {"task_name": "right", "handler": "flowdesk.noop"},
                {"task_name": "join", "handler": "flowdesk.noop", "parent_task": ["left", "right"]},
            ],
        },
        {
            "stage_name": "END",
            "stage_order": 2,
            "tasks": [{"task_name": "final", "handler": "flowdesk.noop"}],
        },
    ],
}
actor = Actor.system("bench")
engine.definition_import(data=DEFINITION, actor=actor)
run_id = f"{int(time.time())}"


def tree_of(root_pid):
    """The pids below root_pid (qcluster: sentinel, workers, pusher, monitor; or the supervisor's)."""
    parents = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{pid}/stat").read()  # noqa: SIM115
        except OSError:
            continue
        parents[int(pid)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, grew = {root_pid}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return tree


def rss_of_workers(cluster_pid):
    """RSS (KiB) of every process below the cluster's main process (or the supervisor)."""
    total = {}
    for pid in tree_of(cluster_pid) - {cluster_pid}:
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total[pid] = int(line.split()[1])
        except OSError:
            continue
    return total


def cpu_seconds_by_role(cluster_pid):
    """CPU seconds used so far, by role: where the time goes (read from /proc)."""
    hz = os.sysconf("SC_CLK_TCK")
    cluster_tree = tree_of(cluster_pid)
    roles = {}
    procs = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{pid}/stat").read()  # noqa: SIM115
            cmd = open(f"/proc/{pid}/cmdline").read().replace("\0", " ")  # noqa: SIM115
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        procs.append((int(pid), int(fields[1]), (int(fields[11]) + int(fields[12])) / hz, cmd))
    db = args.database_url.rsplit("/", 1)[1]
    for pid, _, cpu, cmd in procs:
        if pid == cluster_pid and args.supervised:
            role = "supervisor (manage.py workers)"
        elif pid in cluster_tree:
            role = f"qcluster pid {pid}"
        elif cmd.startswith("postgres:") and f" {db} " in cmd:
            role = "postgresql backends"
        elif cmd.startswith("postgres:") or "bin/postgres" in cmd:
            role = "postgresql background"
        elif "redis-server" in cmd:
            role = "redis"
        elif pid == os.getpid():
            role = "producer (this script)"
        else:
            continue
        roles[role] = roles.get(role, 0.0) + cpu
    return roles


# 1. Statements and commits per service task, in-process (no cluster): the queue's entry point
# (worker.run_steps) on each step the queue would deliver; under eager dispatch the step that
# completes the second branch runs the join and the final step itself.
with CaptureQueriesContext(connection) as start_q:
    p = engine.process_start(
        definition_key="bench", business_key=f"q-{run_id}", actor=actor
    ).process


def run_through(process, capture: bool) -> tuple[int, int, float]:
    """Deliver each scheduled step of ``process`` to ``worker.run_steps`` until none is left;
    (statements without BEGIN/COMMIT, commits, CPU seconds inside run_steps)."""
    commits = statements = 0
    cpu = 0.0
    while ids := list(
        TaskInstance.objects.filter(process=process, state="scheduled").values_list("id", flat=True)
    ):
        for task_id in ids:
            if not capture:
                began = time.process_time()
                worker.run_steps(task_id)
                cpu += time.process_time() - began
                continue
            with CaptureQueriesContext(connection) as q:
                worker.run_steps(task_id)
            sql = [x["sql"] for x in q.captured_queries]
            control = [
                x for x in sql if x.split(" ", 1)[0] in ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE")
            ]
            commits += sum(1 for x in sql if x.startswith("COMMIT"))
            statements += len(sql) - len(control)
            if os.environ.get("BENCH_SHOW_SQL"):
                print("\n".join(f"  {x[:150]}" for x in sql), "\n  --")
    return statements, commits, cpu


counted = [run_through(p, True)] + [
    run_through(
        engine.process_start(
            definition_key="bench", business_key=f"q-{run_id}-{i}", actor=actor
        ).process,
        True,
    )
    for i in range(2)
]
cpu_runs = 30
fresh = [
    engine.process_start(
        definition_key="bench", business_key=f"c-{run_id}-{i}", actor=actor
    ).process
    for i in range(cpu_runs)
]
cpu = sum(run_through(process, False)[2] for process in fresh)
print(f"queries to start a process: {len(start_q.captured_queries)}")
print(
    f"SQL statements per service step (BEGIN/COMMIT not counted; eager={not args.no_eager}): "
    + ", ".join(f"{s / 4:.2f}" for s, _, _ in counted)
)
print("commits per service step: " + ", ".join(f"{c / 4:.2f}" for _, c, _ in counted))
print(
    f"worker CPU per service step (time.process_time around worker.run_steps in this process,"
    f" {cpu_runs} processes; handler, engine, enqueue): {1000 * cpu / (4 * cpu_runs):.2f} ms"
)

# 2. Throughput with a real cluster.
(ROOT / "var").mkdir(exist_ok=True)
log = open(ROOT / "var" / f"bench-qcluster-{args.broker}.log", "w")  # noqa: SIM115
cluster = subprocess.Popen(
    [sys.executable, "manage.py", "workers" if args.supervised else "qcluster"],
    cwd=ROOT,
    env=os.environ,
    stdout=log,
    stderr=subprocess.STDOUT,
    start_new_session=True,
)
time.sleep(6 if args.supervised else 4)
rss_start = rss_of_workers(cluster.pid)
cpu_start = cpu_seconds_by_role(cluster.pid)
t0 = time.time()
keys = [f"b-{run_id}-{i}" for i in range(args.n)]
for key in keys:
    engine.process_start(definition_key="bench", business_key=key, actor=actor)
t_started = time.time()
qs = ProcessInstance.objects.filter(business_key__startswith=f"b-{run_id}-")
while qs.filter(state="completed").count() < args.n:
    time.sleep(0.5)
    if time.time() - t0 > 1800:
        print("timeout")
        break
t1 = time.time()
rss_end = rss_of_workers(cluster.pid)
cpu_end = cpu_seconds_by_role(cluster.pid)
if args.supervised:  # the supervisor stops its qcluster (in a process group of its own)
    cluster.terminate()
    cluster.wait(timeout=90)
else:
    os.killpg(cluster.pid, 9)

rows = list(qs.values_list("created_at", "completed_at"))
lat = sorted((c - s).total_seconds() for s, c in rows if c)
wall = max(c for _, c in rows if c).timestamp() - min(s for s, _ in rows).timestamp()
q = statistics.quantiles(lat, n=100)
print(
    f"broker={args.broker} workers={args.workers} N={args.n}"
    + (" supervised (manage.py workers)" if args.supervised else " bare qcluster")
)
print(f"enqueue phase {t_started - t0:.1f}s; all completed after {t1 - t0:.1f}s")
print(f"processes/s: {args.n / wall:.1f}   service tasks/s: {4 * args.n / wall:.1f}")
print(f"start->completion latency p50 {q[49]:.2f}s p99 {q[98]:.2f}s")
print(f"worker RSS KiB at start {sorted(rss_start.values())} at end {sorted(rss_end.values())}")

print(
    "CPU seconds during the run, by role (backends that closed meanwhile not counted;"
    " the two busiest qcluster pids are the workers, then pusher, monitor, sentinel):"
)
used_by = {role: end - cpu_start.get(role, 0.0) for role, end in cpu_end.items()}
for role, used in sorted(used_by.items(), key=lambda kv: kv[1]):
    print(f"  {role:30s} {used:7.1f} s  = {1000 * used / (4 * args.n):5.1f} ms per service task")
workers = sorted((u for r, u in used_by.items() if r.startswith("qcluster pid")), reverse=True)
print(
    f"worker CPU per service step (the {args.workers} busiest qcluster processes / steps): "
    f"{1000 * sum(workers[: args.workers]) / (4 * args.n):.2f} ms"
)
