"""Engine benchmark (run by hand, never in the test suite).

    .venv/bin/python bench/engine.py --n 2000 --broker redis                 # 4 service steps
    .venv/bin/python bench/engine.py --n 2000 --broker redis --shape mixed   # 2 service + 2 inline
    .venv/bin/python bench/engine.py --n 2000 --shape inline --producers 2   # 4 inline steps
    .venv/bin/python bench/engine.py --n 2000 --broker orm
    .venv/bin/python bench/engine.py --n 2000 --broker redis --supervised

Runs N processes of the peer's flow shape (two parallel steps ``left`` ‖ ``right``, a ``join``,
a ``final`` step in a second stage) on PostgreSQL and reports processes/s, steps/s, SQL
statements and commits per step (measured in-process), start->completion latency p50/p99,
worker RSS at start and end, and the CPU each process used during the run. ``--shape``:

- ``service``: all four are service steps, queued on django-q2 and run by a real qcluster of
  ``--workers`` workers (leased, committed and audited; eager dispatch chains the join and the
  final step in the worker that finished the second branch);
- ``mixed``: ``left`` and ``right`` are service steps on the cluster, ``join`` and ``final`` are
  inline (pure-compute, run in the transaction of the completion that made them ready);
- ``inline``: all four are inline, so a process runs to its end in its start transaction, as
  Viewflow's ``Function`` nodes do (no cluster is started).

``--producers`` OS processes start the processes (``engine.process_start``, one call each, as
Viewflow's harness calls ``start.run()``). ``--supervised`` runs the cluster under the worker
supervisor (``manage.py workers``) instead of a bare ``manage.py qcluster``.
"""

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import time

from common import ROOT, var_dir

SHAPES = ("service", "mixed", "inline")
INLINE = {"service": (), "mixed": ("join", "final"), "inline": ("left", "right", "join", "final")}

parser = argparse.ArgumentParser()
parser.add_argument("--n", type=int, default=2000)
parser.add_argument("--shape", choices=SHAPES, default="service")
parser.add_argument("--broker", choices=["orm", "redis"], default="orm")
parser.add_argument("--workers", type=int, default=2)
parser.add_argument("--producers", type=int, default=1, help="OS processes starting processes")
parser.add_argument(
    "--database-url", default="postgresql://postgres@127.0.0.1:5432/flowdesk_bench_engine"
)
parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/3")
parser.add_argument(
    "--supervised", action="store_true", help="run manage.py workers instead of manage.py qcluster"
)
parser.add_argument(
    "--keep-database",
    action="store_true",
    help="use the database as it is (default: drop and create it, so runs start alike)",
)
parser.add_argument("--cpu-runs", type=int, default=50, help="processes timed for their CPU")
parser.add_argument(
    "--no-eager", action="store_true", help="FLOWDESK_EAGER_STEPS=0: every step through the queue"
)
parser.add_argument(
    "--batch",
    type=int,
    default=16,
    help="FLOWDESK_STEP_BATCH: steps a worker runs at once (1: one message per step)",
)
parser.add_argument(
    "--group",
    type=int,
    default=8,
    help="FLOWDESK_STEP_GROUP: step messages a worker takes together (1: group commit off)",
)
args = parser.parse_args()
uses_cluster = args.shape != "inline"

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
    "FLOWDESK_STEP_BATCH": str(args.batch),
    "FLOWDESK_STEP_GROUP": str(args.group),
    "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "bench-only-" + "x" * 50),
}
os.environ.update(env)

import psycopg  # noqa: E402

name = args.database_url.rsplit("/", 1)[1]
with psycopg.connect(args.database_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as c:
    if not args.keep_database:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if not c.execute("SELECT 1 FROM pg_database WHERE datname=%s", [name]).fetchone():
        c.execute(f'CREATE DATABASE "{name}"')
subprocess.run(
    [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True, env=os.environ
)

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection, connections  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from processes import engine, worker  # noqa: E402
from processes.events import Actor  # noqa: E402
from processes.models import ProcessInstance, TaskInstance  # noqa: E402

KEY = {"service": "bench", "mixed": "bench-mixed", "inline": "bench-inline"}[args.shape]


def task(name: str, **more) -> dict:
    found = {"task_name": name, "handler": "flowdesk.noop", **more}
    if name in INLINE[args.shape]:
        found["inline"] = True
    return found


DEFINITION = {
    "workflow_name": f"Bench ({args.shape})",
    "key": KEY,
    "stages": [
        {
            "stage_name": "CALC",
            "stage_order": 1,
            "tasks": [task("left"), task("right"), task("join", parent_task=["left", "right"])],
        },
        {"stage_name": "END", "stage_order": 2, "tasks": [task("final")]},
    ],
}
actor = Actor.system("bench")
engine.definition_import(data=DEFINITION, actor=actor)
run_id = f"{int(time.time())}"
SERVICE_STEPS = 4 - len(INLINE[args.shape])


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


def cpu_seconds_by_role(cluster_pid, producer_pids=()):
    """CPU seconds used so far, by role: where the time goes (read from /proc)."""
    hz = os.sysconf("SC_CLK_TCK")
    cluster_tree = tree_of(cluster_pid) if cluster_pid else set()
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
        elif pid in producer_pids:
            role = "producers (engine.process_start)"
        elif pid == os.getpid():
            role = "this script (waiting)"
        else:
            continue
        roles[role] = roles.get(role, 0.0) + cpu
    return roles


def start(key: str):
    return engine.process_start(definition_key=KEY, business_key=key, actor=actor).process


def run_through(process, capture: bool) -> tuple[int, int, float]:
    """Deliver the scheduled steps of ``process`` to ``worker.run_steps`` until none is left, as
    the queue would (batch dispatch: up to FLOWDESK_STEP_BATCH in one message);
    (statements without BEGIN/COMMIT, commits, CPU seconds inside run_steps)."""
    commits = statements = 0
    cpu = 0.0
    while ids := list(
        TaskInstance.objects.filter(process=process, state="scheduled").values_list("id", flat=True)
    ):
        for at in range(0, len(ids), args.batch):
            batch = ids[at : at + args.batch]
            if not capture:
                began = time.process_time()
                worker.run_steps(*batch)
                cpu += time.process_time() - began
                continue
            with CaptureQueriesContext(connection) as q:
                worker.run_steps(*batch)
            s, c = count(q)
            statements, commits = statements + s, commits + c
    return statements, commits, cpu


def count(captured) -> tuple[int, int]:
    """(statements without BEGIN/COMMIT/SAVEPOINT, commits) of a CaptureQueriesContext."""
    sql = [x["sql"] for x in captured.captured_queries]
    control = [x for x in sql if x.split(" ", 1)[0] in ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE")]
    if os.environ.get("BENCH_SHOW_SQL"):
        print("\n".join(f"  {x[:150]}" for x in sql), "\n  --")
    return len(sql) - len(control), sum(1 for x in sql if x.startswith("COMMIT"))


# 1. Statements and commits, in-process (no cluster; one process's steps at a time, no group
# commit: the messages the starts queue wait for the cluster): the start, then the queue's entry point
# (worker.run_steps) on each step the queue would deliver; under eager dispatch the step that
# completes the second branch runs the join and the final step itself.
settings.FLOWDESK_STEP_GROUP = 1
for i in range(5):  # warm: SQL text cached, statements prepared
    run_through(start(f"w-{run_id}-{i}"), False)
starts, steps = [], []
for i in range(3):
    with CaptureQueriesContext(connection) as q:
        p = start(f"q-{run_id}-{i}")
    starts.append(count(q))
    steps.append(run_through(p, True))
cpu_runs = args.cpu_runs
began = time.process_time()
fresh = [start(f"c-{run_id}-{i}") for i in range(cpu_runs)]
start_cpu = time.process_time() - began
step_cpu = sum(run_through(process, False)[2] for process in fresh)
print(f"shape={args.shape}: {SERVICE_STEPS} service steps, {4 - SERVICE_STEPS} inline steps")
print(
    "start of a process: "
    + ", ".join(f"{s} statements {c} commit(s)" for s, c in starts)
    + f"; {1000 * start_cpu / cpu_runs:.2f} ms CPU (inline steps included)"
)
if SERVICE_STEPS:
    print(
        f"SQL statements per service step (BEGIN/COMMIT not counted; eager={not args.no_eager}, "
        f"batch={args.batch}): " + ", ".join(f"{s / SERVICE_STEPS:.2f}" for s, _, _ in steps)
    )
    print("commits per service step: " + ", ".join(f"{c / SERVICE_STEPS:.2f}" for _, c, _ in steps))
    print(
        "worker CPU per service step (time.process_time around worker.run_steps in this process,"
        f" {cpu_runs} processes; handler, engine, enqueue, inline steps it ran):"
        f" {1000 * step_cpu / (SERVICE_STEPS * cpu_runs):.2f} ms"
    )
total_statements = [s0 + s for (s0, _), (s, _, _) in zip(starts, steps, strict=True)]
total_commits = [c0 + c for (_, c0), (_, c, _) in zip(starts, steps, strict=True)]
print(
    "per process, start included: "
    + ", ".join(f"{s} statements" for s in total_statements)
    + "; "
    + ", ".join(f"{c} commits" for c in total_commits)
)


# 2. Throughput: the producers start the processes (a cluster runs the service steps).
def produce(keys, ready, go, release):
    """Start ``keys`` once ``go`` is set; keep the connection (its backend's CPU is read) until
    ``release``."""
    connections.close_all()  # the forked parent's connection is not ours
    ready.set()
    go.wait()
    for key in keys:
        start(key)
    release.wait()
    connections.close_all()


cluster = None
if uses_cluster:
    log = open(var_dir() / f"bench-qcluster-{args.broker}.log", "w")  # noqa: SIM115
    cluster = subprocess.Popen(
        [sys.executable, "manage.py", "workers" if args.supervised else "qcluster"],
        cwd=ROOT,
        env=os.environ,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    time.sleep(6 if args.supervised else 4)
keys = [f"b-{run_id}-{i}" for i in range(args.n)]
with connection.cursor() as cursor:  # a checkpoint now, not one landing in some runs only
    cursor.execute("CHECKPOINT")
fork = multiprocessing.get_context("fork")
go, release = fork.Event(), fork.Event()
connections.close_all()
producers = []
for index in range(args.producers):
    ready = fork.Event()
    proc = fork.Process(target=produce, args=(keys[index :: args.producers], ready, go, release))
    proc.start()
    ready.wait()
    producers.append(proc)
producer_pids = {p.pid for p in producers}
rss_start = rss_of_workers(cluster.pid) if cluster else {}
cpu_start = cpu_seconds_by_role(cluster and cluster.pid, producer_pids)
t0 = time.time()
go.set()
qs = ProcessInstance.objects.filter(business_key__startswith=f"b-{run_id}-")
while qs.filter(state="completed").count() < args.n:
    time.sleep(0.2)
    if time.time() - t0 > 1800:
        print("timeout")
        break
t1 = time.time()
rss_end = rss_of_workers(cluster.pid) if cluster else {}
cpu_end = cpu_seconds_by_role(cluster and cluster.pid, producer_pids)
release.set()
for proc in producers:
    proc.join()
if cluster is not None and args.supervised:  # the supervisor stops its qcluster (own group)
    cluster.terminate()
    cluster.wait(timeout=90)
elif cluster is not None:
    os.killpg(cluster.pid, 9)

rows = list(qs.values_list("created_at", "completed_at"))
lat = sorted((c - s).total_seconds() for s, c in rows if c)
wall = max(c for _, c in rows if c).timestamp() - min(s for s, _ in rows).timestamp()
q = statistics.quantiles(lat, n=100)
print(
    f"shape={args.shape} broker={args.broker if uses_cluster else '-'} "
    f"workers={args.workers if uses_cluster else 0} producers={args.producers} N={args.n}"
    + (
        (" supervised (manage.py workers)" if args.supervised else " bare qcluster")
        if cluster
        else ""
    )
)
print(f"all completed after {t1 - t0:.1f}s")
print(f"processes/s: {args.n / wall:.1f}   steps/s: {4 * args.n / wall:.1f}")
print(f"start->completion latency p50 {q[49]:.3f}s p99 {q[98]:.3f}s")
if cluster:
    print(f"worker RSS KiB at start {sorted(rss_start.values())} at end {sorted(rss_end.values())}")

print(
    "CPU seconds during the run, by role (backends that closed meanwhile not counted;"
    " the busiest qcluster pids are the workers, then pusher, monitor, sentinel):"
)
used_by = {role: end - cpu_start.get(role, 0.0) for role, end in cpu_end.items()}
for role, used in sorted(used_by.items(), key=lambda kv: kv[1]):
    print(f"  {role:34s} {used:7.1f} s  = {1000 * used / args.n:5.2f} ms per process")
print(f"CPU per process, all roles: {1000 * sum(used_by.values()) / args.n:.2f} ms")
if cluster and SERVICE_STEPS:
    busiest = sorted((u for r, u in used_by.items() if r.startswith("qcluster pid")), reverse=True)
    print(
        f"worker CPU per service step (the {args.workers} busiest qcluster processes / steps): "
        f"{1000 * sum(busiest[: args.workers]) / (SERVICE_STEPS * args.n):.2f} ms"
    )
