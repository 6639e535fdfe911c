"""Benchmark: N salary processes end to end, simulators at 50 ms latency, approvals via the engine.

Run by hand (never a timed test), on its own PostgreSQL database:

    .venv/bin/python bench/salary.py --n 1000 --workers 8

It creates/migrates the database ``flowdesk_bench_salary`` (``--db-url`` to change), serves the
simulators with gunicorn (FLOWDESK_SIMULATOR_FAULTS="accounting:latency=50,bonus:latency=50"),
runs a qcluster (ORM broker), starts N processes, approves every bonus through
``engine.task_decide`` as soon as it waits, and reports processes/s, per-step p50/p95 and
whether the two calculations of each process overlapped (the CALCULATE stage should take ~1x, not
~2x, the simulator latency).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

from common import ROOT, add_database_options, bench_env, ensure_database, pct, var_dir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--latency", type=int, default=50, help="simulator latency in ms")
    add_database_options(parser, "flowdesk_bench_salary", "--db-url")
    args = parser.parse_args()

    ensure_database(args.database_url)  # its own tables are emptied below, the rest kept
    queue = f"bench{uuid.uuid4().hex[:6]}"
    env = bench_env(
        args.database_url,
        FLOWDESK_Q_NAME=queue,
        FLOWDESK_Q_WORKERS=str(args.workers),
        FLOWDESK_Q_POLL="0.05",
        FLOWDESK_REDIS_URL="",
        FLOWDESK_SMS_BACKEND="integrations.sms.backends.locmem.SmsBackend",
    )
    os.environ.update(env)

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction

    call_command("migrate", verbosity=0)
    call_command("setup_flowdesk", verbosity=0, stdout=open(os.devnull, "w"))  # noqa: SIM115
    from integrations.models import SimulatorCall, SimulatorFault, SimulatorPayout
    from processes import engine
    from processes.events import Actor
    from processes.models import ProcessInstance, TaskInstance, TaskState

    # a clean slate: bench rows only (TRUNCATE: events are append-only, DELETE is refused)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL flowdesk.purge = 'on'")  # the owner's purge (migration 0006)
        cursor.execute(
            "TRUNCATE processes_processevent, processes_taskinstance, processes_processinstance,"
            " integrations_simulatorcall, integrations_simulatorresponse,"
            " integrations_simulatorpayout, integrations_simulatornotice, django_q_ormq CASCADE"
        )
    SimulatorFault.objects.all().delete()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    managers = Group.objects.get_or_create(name="managers")[0]
    for username in ("alice", "bob"):
        user = get_user_model().objects.get_or_create(username=username)[0]
        user.groups.add(managers)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    child_env = dict(
        env,
        FLOWDESK_SIMULATORS="1",
        FLOWDESK_SIMULATOR_FAULTS=f"accounting:latency={args.latency},bonus:latency={args.latency}",
        FLOWDESK_ACCOUNTING_URL=f"{base}/simulators/accounting",
        FLOWDESK_BONUS_URL=f"{base}/simulators/bonus",
        FLOWDESK_BASE_URL=base,
    )
    logs = open(var_dir() / "bench-salary.log", "wb")  # noqa: SIM115
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "-b", f"127.0.0.1:{port}"]
        + ["--workers", "2", "--threads", str(max(8, args.workers * 2))],
        cwd=ROOT,
        env=child_env,
        stdout=logs,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    cluster = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=child_env,
        stdout=logs,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        import httpx

        for _ in range(100):
            try:
                httpx.get(f"{base}/simulators/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        actor = Actor.system("bench")
        t0 = time.monotonic()
        for i in range(args.n):
            engine.process_start(
                definition_key="salary",
                business_key=f"E{i + 1:05d}-2026-11",
                input={"employee_id": f"E{i + 1:05d}", "period": "2026-11"},
                actor=actor,
            )
        started_in = time.monotonic() - t0
        approvers = {u.username: Actor.for_user(u) for u in get_user_model().objects.all()}
        approved = 0
        deadline = time.monotonic() + max(600, args.n * 2)
        while time.monotonic() < deadline:
            open_tasks = TaskInstance.objects.filter(
                name="approve_bonus", state=TaskState.SCHEDULED
            ).select_related("assignee")
            for task in open_tasks:
                engine.task_decide(
                    task_id=task.pk,
                    actor=approvers[task.assignee.username if task.assignee else "alice"],
                    decision="approve",
                )
                approved += 1
            done = ProcessInstance.objects.filter(definition_key="salary").exclude(state="running")
            if done.count() >= args.n:
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - t0
    finally:
        for proc in (cluster, web):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=10)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)

    processes = ProcessInstance.objects.filter(definition_key="salary")
    states = {s: processes.filter(state=s).count() for s in ("completed", "failed", "running")}
    print(f"salary bench: N={args.n}, {args.workers} workers, simulators at {args.latency} ms")
    print(f"  start {args.n} processes: {started_in:.1f}s; all done in {elapsed:.1f}s")
    print(f"  {states}; {approved} approvals; payouts {SimulatorPayout.objects.count()}")
    print(f"  throughput: {states['completed'] / elapsed:.1f} processes/s (incl. approvals)")
    print("  per step (started -> finished, ms):   p50     p95")
    tasks = TaskInstance.objects.filter(process__definition_key="salary", state="completed")
    for name in ("salary_base", "bonus", "record_payout"):
        rows = tasks.filter(name=name).values_list("started_at", "finished_at")
        ms = [(f - s).total_seconds() * 1000 for s, f in rows if s and f]
        print(f"    {name:<14}{pct(ms, 50):>20.0f}{pct(ms, 95):>8.0f}")
    rows = tasks.filter(name="salary_base").values_list("scheduled_at", "started_at")
    lag = [(s - q).total_seconds() * 1000 for q, s in rows if q and s]
    print(
        f"    {'queue wait':<14}{pct(lag, 50):>20.0f}{pct(lag, 95):>8.0f}  (scheduled -> started)"
    )
    approval = tasks.filter(name="approve_bonus").values_list("scheduled_at", "finished_at")
    ms = [(f - s).total_seconds() * 1000 for s, f in approval if s and f]
    print(
        f"    {'approve_bonus':<14}{pct(ms, 50):>20.0f}{pct(ms, 95):>8.0f}  (waiting for the bench)"
    )

    calc = {}
    for pid, name, s, f in tasks.filter(name__in=["salary_base", "bonus"]).values_list(
        "process_id", "name", "started_at", "finished_at"
    ):
        calc.setdefault(pid, {})[name] = (s, f)
    overlap, stage_ms, serial_ms = 0, [], []
    for parts in calc.values():
        if len(parts) != 2:
            continue
        (s1, f1), (s2, f2) = parts.values()
        overlap += s1 < f2 and s2 < f1
        stage_ms.append((max(f1, f2) - min(s1, s2)).total_seconds() * 1000)
        serial_ms.append(((f1 - s1) + (f2 - s2)).total_seconds() * 1000)
    print(
        f"  CALCULATE: the two calculations overlapped in {overlap}/{len(calc)} processes; "
        f"stage p50 {pct(stage_ms, 50):.0f} ms vs sum of both steps p50 {pct(serial_ms, 50):.0f} ms"
    )
    sims = SimulatorCall.objects.filter(status_code__lt=300)
    sim_ms = [(c.finished_at - c.started_at).total_seconds() * 1000 for c in sims]
    print(f"  simulator answer time p50 {pct(sim_ms, 50):.0f} ms, p95 {pct(sim_ms, 95):.0f} ms")


if __name__ == "__main__":
    main()
