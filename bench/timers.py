"""Timer benchmark (run by hand): the timer loop's cost at 200k open timers, and its lateness.

    .venv/bin/python bench/timers.py [--timers 200000] [--due 1000] [--passes 200]
                                     [--late 40] [--db flowdesk_bench_timers]

It (re)creates its database, migrates, imports one definition (ten human tasks escalating after
five seconds, a process ``deadline``), then inserts ``--timers`` open timers with SQL
``generate_series`` (scheduled human tasks whose ``wake_at`` lies in the next 30 days, ten per
instance, each instance with a ``deadline_at``: the partial indexes ``task_wake_at`` and
``process_deadline_at`` hold them all). Then:

1. ``EXPLAIN (ANALYZE, BUFFERS)`` of the loop's three queries: the sweep's due tasks, the due
   process deadlines, and ``next_wake`` (the earliest timer);
2. ms per pass of the loop with nothing due (``timers_sweep`` + ``next_wake``: what the loop
   pays every ``FLOWDESK_TIMER_TICK`` second at most), over ``--passes`` passes;
3. ms for one pass acting on ``--due`` due timers (escalations through the engine);
4. lateness: ``--late`` processes of a one-task definition started through the engine over five
   seconds, each human task escalating five seconds after its start, with the timer loop running in a thread (tick 1 s): the time between each
   ``wake_at`` and its ``task_escalated`` event (p50/max). Target: max <= 1 s.
5. back-off with a real cluster (``--backoff N``, default 20): ``manage.py workers`` (qcluster on
   the ORM broker, or Redis with ``--redis URL``, and its timer-loop thread) runs N processes of
   one step that fails its first attempt with a 5 s back-off: the time from each attempt's
   ``retry_at`` to the second ``task_started`` (p50/max). Target: within 1 s (5 s + 1 s).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import threading
import time

from common import (
    ROOT,
    add_database_options,
    ensure_database,
    recreate_database,
    setup_django,
    var_dir,
)

NAMES = [f"t{i}" for i in range(10)]


def definition(key: str = "timers", names=NAMES) -> dict:
    return {
        "workflow_name": key.title(),
        "key": key,
        "deadline": "P30D",
        "on_error": {"notify": False},
        "stages": [
            {
                "stage_name": "WAIT",
                "stage_order": 1,
                "tasks": [
                    {
                        "task_name": name,
                        "task_type": "HUMAN",
                        "assigned_to": "clerks",
                        "escalation": {"after": "PT5S", "to": "managers", "notify": False},
                    }
                    for name in names
                ],
            }
        ],
    }


def load(timers: int) -> None:
    import seeding

    from processes.models import ProcessDefinition

    seeding.seed_open_timers(ProcessDefinition.objects.get(key="timers"), timers)


def explain() -> None:
    from django.db import connection

    queries = {
        "sweep: due tasks": "SELECT id FROM processes_taskinstance WHERE wake_at <= now() "
        "ORDER BY wake_at LIMIT 1000",
        "sweep: due process deadlines": "SELECT id FROM processes_processinstance "
        "WHERE deadline_at <= now() ORDER BY deadline_at LIMIT 1000",
        "next_wake: tasks": "SELECT min(wake_at) FROM processes_taskinstance "
        "WHERE wake_at IS NOT NULL",
        "next_wake: processes": "SELECT min(deadline_at) FROM processes_processinstance "
        "WHERE deadline_at IS NOT NULL",
    }
    with connection.cursor() as cur:
        for label, query in queries.items():
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + query)
            print(f"--- {label}")
            for (line,) in cur.fetchall():
                print("   ", line)


def ms(samples) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):7.2f} ms  p95 {p95:7.2f} ms  max {ordered[-1]:7.2f} ms"


def empty_passes(passes: int) -> None:
    from processes import engine

    samples = []
    for _ in range(passes):
        started = time.perf_counter()
        outcome = engine.timers_sweep()
        engine.next_wake()
        samples.append((time.perf_counter() - started) * 1000)
        assert not outcome, outcome
    print(f"pass with nothing due (sweep + next_wake), {passes} passes: {ms(samples)}")


def due_pass(due: int) -> None:
    from django.db import connection

    from processes import engine

    with connection.cursor() as cur:
        cur.execute(
            "UPDATE processes_taskinstance SET wake_at = now() - interval '1 second' "
            "WHERE id IN (SELECT id FROM processes_taskinstance WHERE wake_at IS NOT NULL "
            "ORDER BY id LIMIT %s)",
            [due],
        )
    started = time.perf_counter()
    outcome = engine.timers_sweep(limit=due)
    took = (time.perf_counter() - started) * 1000
    print(f"pass acting on {due} due timers: {took:.0f} ms ({took / due:.2f} ms each) {outcome}")


def lateness(count: int) -> None:
    from processes import engine
    from processes.events import Actor
    from processes.models import EventType, ProcessEvent, TaskInstance

    stop = threading.Event()
    loop = threading.Thread(target=engine.timer_loop, args=(stop,), kwargs={"tick": 1.0})
    loop.start()
    try:
        ids = []
        for i in range(count):
            ids.append(
                engine.process_start(
                    definition_key="late", business_key=f"L-{i}", actor=Actor.system("bench")
                ).process.pk
            )
            time.sleep(5.0 / count)  # spread the due times over the 5 s
        due = {  # the escalation's due time: scheduled + 5 s (wake_at is cleared once done)
            (t.process_id, t.name): t.scheduled_at + dt.timedelta(seconds=5)
            for t in TaskInstance.objects.filter(process_id__in=ids)
        }
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done = ProcessEvent.objects.filter(
                process_id__in=ids, type=EventType.TASK_ESCALATED
            ).count()
            if done >= len(due):
                break
            time.sleep(0.5)
    finally:
        stop.set()
        loop.join()
    late = [
        (e.created_at - due[(e.process_id, e.task_name)]).total_seconds() * 1000
        for e in ProcessEvent.objects.filter(process_id__in=ids, type=EventType.TASK_ESCALATED)
    ]
    print(
        f"lateness of {len(late)}/{len(due)} escalations (wake_at -> event), timer loop tick 1 s, "
        f"{worker_count_open()} open timers: {ms(late)}"
    )
    print("target max <= 1000 ms:", "met" if late and max(late) <= 1000 else "NOT met")


def backoff(count: int, redis: str, db_url: str) -> None:
    import subprocess

    import bench.steps  # noqa: F401  (bench.flaky, so the definition validates here too)
    from processes import engine
    from processes.events import Actor
    from processes.models import EventType, ProcessEvent

    engine.definition_import(
        data={
            "workflow_name": "Backoff",
            "key": "backoff",
            "stages": [
                {
                    "stage_name": "A",
                    "stage_order": 1,
                    "tasks": [
                        {
                            "task_name": "pay",
                            "handler": "bench.flaky",
                            "retry": {"max_attempts": 2, "backoff": "PT5S"},
                        }
                    ],
                }
            ],
        },
        actor=Actor.system("bench"),
    )
    queue_name = f"benchtimers{os.getpid()}"
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "FLOWDESK_STEP_MODULES": "bench.steps",
        "FLOWDESK_REDIS_URL": redis,
        "FLOWDESK_Q_NAME": queue_name,
        "FLOWDESK_Q_POLL": "0.1",
        "FLOWDESK_SUPERVISOR_ID": f"{queue_name}-sup",
        "FLOWDESK_LOG_LEVEL": "WARNING",
    }
    log = open(var_dir() / "bench-timers-workers.log", "wb")  # noqa: SIM115
    sup = subprocess.Popen(
        [sys.executable, "manage.py", "workers"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        os.environ["FLOWDESK_REDIS_URL"] = redis  # this process enqueues into the same queue
        from django_q.conf import Conf

        from processes import queue

        Conf.REDIS, Conf.CLUSTER_NAME, Conf.PREFIX = redis or None, queue_name, queue_name
        Conf.ORM = None if redis else "default"
        Conf.BROKER_CLASS = f"processes.supervisor.{'RedisBroker' if redis else 'OrmBroker'}"
        queue._brokers.clear()
        time.sleep(5)  # the cluster starts
        ids = []
        for i in range(count):
            ids.append(
                engine.process_start(
                    definition_key="backoff", business_key=f"K-{i}", actor=Actor.system("bench")
                ).process.pk
            )
            time.sleep(0.25)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = ProcessEvent.objects.filter(
                process_id__in=ids, type=EventType.PROCESS_COMPLETED
            ).count()
            if done >= count:
                break
            time.sleep(0.5)
    finally:
        sup.terminate()
        sup.wait(timeout=60)
        log.close()
    late = []
    for pid in ids:
        events = list(ProcessEvent.objects.filter(process_id=pid).order_by("seq"))
        failed = [e for e in events if e.type == EventType.TASK_ATTEMPT_FAILED]
        starts = [e for e in events if e.type == EventType.TASK_STARTED]
        if failed and len(starts) >= 2:
            retry_at = dt.datetime.fromisoformat(failed[0].data["retry_at"])
            late.append((starts[1].created_at - retry_at).total_seconds() * 1000)
    broker = "Redis" if redis else "ORM"
    print(
        f"back-off 5 s, real cluster ({broker} broker), {len(late)}/{count} retried: "
        f"retry_at -> second start {ms(late)}"
    )
    print("target max <= 1000 ms:", "met" if late and max(late) <= 1000 else "NOT met")


def worker_count_open() -> int:
    from processes.models import TaskInstance

    return TaskInstance.objects.filter(wake_at__isnull=False).count()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timers", type=int, default=200_000)
    parser.add_argument("--due", type=int, default=1000)
    parser.add_argument("--passes", type=int, default=200)
    parser.add_argument("--late", type=int, default=40)
    add_database_options(parser, "flowdesk_bench_timers")
    parser.add_argument("--db", help="the database's name on FLOWDESK_BENCH_PG (old spelling)")
    parser.add_argument("--backoff", type=int, default=20)
    parser.add_argument("--redis", default="", help="Redis URL for the back-off part (else ORM)")
    parser.add_argument("--only-backoff", action="store_true", help="skip parts 1-4")
    args = parser.parse_args()
    url = args.database_url
    if args.db:
        url = f"{url.rsplit('/', 1)[0]}/{args.db}"
    if args.keep_database:
        ensure_database(url)
    else:
        recreate_database(url)
    setup_django(url)

    from processes import engine
    from processes.events import Actor

    if args.only_backoff:
        backoff(args.backoff, args.redis, url)
        return 0
    engine.definition_import(data=definition(), actor=Actor.system("bench"))
    engine.definition_import(data=definition("late", ["one"]), actor=Actor.system("bench"))
    started = time.perf_counter()
    load(args.timers)
    print(f"{worker_count_open():,} open timers loaded in {time.perf_counter() - started:.0f} s")
    print(f"load average {os.getloadavg()}")
    explain()
    empty_passes(args.passes)
    due_pass(args.due)
    lateness(args.late)
    if args.backoff:
        backoff(args.backoff, args.redis, url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
