"""Soak: salary processes at a steady rate for N minutes on PostgreSQL + Redis, under chaos.

Run by hand (never a timed test), on its own PostgreSQL database and its own Redis server:

    .venv/bin/python bench/soak.py --minutes 30
    .venv/bin/python bench/soak.py --minutes 0.2 --workers 2 --drain 2 --kill-every 3,5 \
        --outage 2 --reenqueue-after 3        # the smoke test's size (tests/test_benches.py)

- the simulators (gunicorn) answer 10% of calls with 500 (``--error-rate``) and get latency spikes
  (8 s for 15 s, every ~90 s; beyond the 10 s HTTP read timeout half the time);
- ``manage.py workers`` (the supervisor) runs the qcluster on a Redis server of its own
  (``redis-server`` on a free port, no persistence);
- chaos: a random worker is SIGKILLed every 20–60 s (``--kill-every``); the whole cluster is
  restarted (SIGTERM to the supervisor, then a new one) at 1/3 and 2/3 of the run; Redis is
  killed and comes back empty 30 s (``--outage``) later, once, at 1/2 (every queued message
  lost: the sweep must recover them, after ``--reenqueue-after`` seconds);
- the bench decides every approval as it appears: 80% approve, 10% reject, 10% cancel the
  process (its ``bonus`` step has a compensation, ``notify.rejection``, so a cancelled process
  sends one rejection notice).

At the end (after a drain of up to ``--drain`` minutes without new starts) it reports: processes
by state, incidents with their cause, effects once (payouts and notices per employee, from the
simulators' own tables), compensations once, ``verify_history``, SMS sent, and worker RSS over
time. Exit status 1 when an invariant is broken (a duplicate effect, a process still running after
the drain, a history that differs).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import random
import re
import sys
import threading
import time
import uuid

from common import add_database_options, bench_env, ensure_database, recreate_database, var_dir
from soak_stack import KEY, Stack, chaos, free_port, latency_spikes, soak_definition


def main() -> None:  # noqa: C901 - a script, read top to bottom
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=float, default=20, help="processes started per minute")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--error-rate", type=float, default=0.1)
    parser.add_argument("--drain", type=float, default=10, help="minutes to let work finish")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--kill-every", default="20,60", help="seconds between worker kills: MIN,MAX (random)"
    )
    parser.add_argument("--outage", type=float, default=30, help="seconds Redis stays down")
    parser.add_argument(
        "--reenqueue-after", type=float, default=30, help="FLOWDESK_REENQUEUE_AFTER (seconds)"
    )
    add_database_options(parser, "flowdesk_bench_soak", "--db-url")
    args = parser.parse_args()
    random.seed(args.seed)
    kill_every = tuple(float(x) for x in args.kill_every.split(","))

    if args.keep_database:
        ensure_database(args.database_url)
    else:
        recreate_database(args.database_url)
    log_dir = var_dir()
    sms_file = log_dir / "soak-sms.jsonl"
    sms_file.unlink(missing_ok=True)
    redis_port, web_port = free_port(), free_port()
    base = f"http://127.0.0.1:{web_port}"
    queue = f"soak{uuid.uuid4().hex[:6]}"
    env = bench_env(
        args.database_url,
        FLOWDESK_Q_NAME=queue,
        FLOWDESK_Q_WORKERS=str(args.workers),
        FLOWDESK_Q_TIMEOUT="120",
        FLOWDESK_Q_RETRY="150",
        FLOWDESK_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        FLOWDESK_REENQUEUE_AFTER=f"{args.reenqueue_after:g}",
        FLOWDESK_SUPERVISOR_ID=f"{queue}-sup",
        FLOWDESK_PROGRESS_DIR=str(log_dir / f"soak-progress-{queue}"),
        FLOWDESK_SIMULATORS="1",
        FLOWDESK_SIMULATOR_FAULTS=(
            f"accounting:error_rate={args.error_rate},bonus:error_rate={args.error_rate}"
        ),
        FLOWDESK_ACCOUNTING_URL=f"{base}/simulators/accounting",
        FLOWDESK_BONUS_URL=f"{base}/simulators/bonus",
        FLOWDESK_BASE_URL=base,
        FLOWDESK_SMS_BACKEND="integrations.sms.backends.file.SmsBackend",
        FLOWDESK_SMS_FILE_PATH=str(sms_file),
        FLOWDESK_SMS_RATE_LIMIT="1000",
    )
    if "FLOWDESK_LOG_LEVEL" not in os.environ:
        del env["FLOWDESK_LOG_LEVEL"]  # the children log as configured ("ready for work at")
    os.environ.update(env)
    os.environ["FLOWDESK_LOG_LEVEL"] = "WARNING"  # this process only: its children log to var/

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("setup_flowdesk", verbosity=0, stdout=open(os.devnull, "w"))  # noqa: SIM115
    from integrations.models import (
        AlertRecipient,
        SimulatorCall,
        SimulatorFault,
        SimulatorNotice,
        SimulatorPayout,
    )
    from integrations.sms.backends.file import read_messages
    from processes import engine
    from processes.events import Actor
    from processes.models import ProcessInstance, TaskInstance, TaskState

    SimulatorFault.objects.all().delete()
    User = get_user_model()
    managers = Group.objects.get_or_create(name="managers")[0]
    for username in ("alice", "bob"):
        User.objects.get_or_create(username=username)[0].groups.add(managers)
    oncall = User.objects.get_or_create(username="oncall", defaults={"is_staff": True})[0]
    AlertRecipient.objects.update_or_create(user=oncall, defaults={"phone": "+33612345678"})
    system = Actor.system("soak")
    engine.definition_import(data=soak_definition(), actor=system, publish=True)

    stack = Stack(env, log_dir, redis_port)
    stop = threading.Event()
    chaos_log: list = []
    rss: list = []
    counts = collections.Counter()
    decisions: dict = {}
    seconds = args.minutes * 60
    stack.start_redis()
    stack.start_web(web_port)
    stack.start_workers()
    import httpx

    for _ in range(150):
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(f"{base}/healthz", timeout=1)
            break
        time.sleep(0.2)
    for system_name in ("accounting", "bonus"):
        SimulatorFault.objects.update_or_create(
            system=system_name, defaults={"error_rate": args.error_rate, "latency_ms": 0}
        )
    threads = [
        threading.Thread(
            target=chaos,
            args=(stack, seconds, stop, chaos_log, rss, kill_every, args.outage),
            daemon=True,
        ),
        threading.Thread(target=latency_spikes, args=(stop, seconds), daemon=True),
    ]
    t0 = time.monotonic()
    start_clock = time.strftime("%H:%M:%S")
    for thread in threads:
        thread.start()
    approvers = {u.username: Actor.for_user(u) for u in User.objects.all()}
    started = 0
    health = collections.Counter()
    try:
        end_of_starts, end = t0 + seconds, t0 + seconds + args.drain * 60
        next_start = next_health = t0
        while time.monotonic() < end:
            now = time.monotonic()
            if now < end_of_starts and now >= next_start:
                started += 1
                employee = f"E{started:05d}"
                try:
                    engine.process_start(
                        definition_key=KEY,
                        business_key=f"{employee}-2026-11",
                        input={"employee_id": employee, "period": "2026-11"},
                        actor=system,
                    )
                except Exception as exc:  # the broker down: committed, the sweep enqueues it
                    counts[f"start raised {type(exc).__name__}"] += 1
                next_start += 60 / args.rate
            waiting = TaskInstance.objects.filter(
                process__definition_key=KEY, name="approve_bonus", state=TaskState.SCHEDULED
            ).select_related("assignee", "process")
            for task in waiting[:50]:
                choice = random.random()
                try:
                    if choice < 0.1:
                        engine.process_cancel(
                            process_id=task.process_id, actor=system, reason="soak"
                        )
                        decisions[task.process_id] = "cancel"
                    else:
                        decision = "reject" if choice < 0.2 else "approve"
                        who = task.assignee.username if task.assignee else "alice"
                        engine.task_decide(task_id=task.pk, actor=approvers[who], decision=decision)
                        decisions[task.process_id] = decision
                except Exception as exc:
                    counts[f"decide raised {type(exc).__name__}: {str(exc)[:60]}"] += 1
            if now >= next_health:
                next_health = now + 10
                with contextlib.suppress(httpx.HTTPError):
                    health[httpx.get(f"{base}/healthz", timeout=5).status_code] += 1
            if now >= end_of_starts:
                active = ProcessInstance.objects.filter(
                    definition_key=KEY, state__in=["running", "cancelling"]
                ).count()
                if active == 0:
                    break
            time.sleep(0.25)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        elapsed = time.monotonic() - t0
        stack.stop_all()

    # --- the report --------------------------------------------------------------------------
    broken = []
    processes = ProcessInstance.objects.filter(definition_key=KEY)
    by_state = collections.Counter(processes.values_list("state", flat=True))
    print(
        f"soak: {args.minutes:g} min of starts at {args.rate:g}/min + drain, {elapsed / 60:.1f} min "
        f"in all; {args.workers} workers, Redis broker, simulators at {args.error_rate:.0%} errors"
    )
    print(f"  chaos: {len(chaos_log)} actions (seconds after the start, started {start_clock})")
    kinds = collections.Counter(re.sub(r"\d+", "N", what) for _, what in chaos_log)
    for what, n in sorted(kinds.items()):
        print(f"    {n} x {what}")
    print("    " + ", ".join(f"{at}s {what.split(' (')[0]}" for at, what in chaos_log))
    print(f"  processes started {started}: {dict(sorted(by_state.items()))}")
    if counts:
        print(f"  bench-side errors: {dict(counts)}")
    causes = collections.Counter()
    for process in processes.filter(state="failed"):
        failed = process.tasks.filter(state=TaskState.FAILED).first()
        cause = f"{failed.name}: {failed.last_error[:90]}" if failed else "(no failed task!)"
        causes[re.sub(r"E\d{5}", "E…", cause)] += 1
        if failed is None or not failed.last_error:
            broken.append(f"incident without a cause: {process.pk}")
    for cause, n in causes.most_common():
        print(f"    incident x{n}: {cause}")
    stuck = processes.filter(state__in=["running", "cancelling"])
    if stuck.exists():
        broken.append(f"{stuck.count()} processes still running after the drain")
        for process in stuck[:10]:
            tasks = ", ".join(f"{t.name}={t.state}" for t in process.tasks.all())
            print(f"    STILL RUNNING {process.business_key}: {tasks}")

    payouts = collections.Counter(SimulatorPayout.objects.values_list("employee_id", flat=True))
    notices = collections.Counter(SimulatorNotice.objects.values_list("employee_id", flat=True))
    dup_payouts = {e: n for e, n in payouts.items() if n > 1}
    dup_notices = {e: n for e, n in notices.items() if n > 1}
    paid = processes.filter(
        state="completed", tasks__name="record_payout", tasks__state=TaskState.COMPLETED
    ).count()
    print(
        f"  effects: {sum(payouts.values())} payouts for {paid} completed payout steps "
        f"(duplicates: {len(dup_payouts)}); {sum(notices.values())} rejection notices "
        f"(duplicates: {len(dup_notices)})"
    )
    if dup_payouts or dup_notices or sum(payouts.values()) != paid:
        broken.append(f"effects not once: payouts {dup_payouts}, notices {dup_notices}")
    cancelled = processes.filter(state="cancelled")
    # the bonus was done when the process was cancelled: compensated since (or still trying)
    done = [
        TaskState.COMPLETED,
        TaskState.COMPENSATING,
        TaskState.COMPENSATION_RUNNING,
        TaskState.COMPENSATED,
        TaskState.COMPENSATION_FAILED,
    ]
    owed = [p for p in cancelled if p.tasks.filter(name="bonus", state__in=done).exists()]
    ran = sum(1 for p in owed if notices.get(p.variables.get("employee_id"), 0) == 1)
    print(
        f"  compensations: {len(owed)} cancelled processes owed one (bonus done): "
        f"{ran} ran exactly once, {len(owed) - ran} not (or more than once)"
    )
    for process in owed:
        employee = process.variables.get("employee_id")
        if notices.get(employee, 0) != 1:
            runs = [
                (e.created_at.strftime("%H:%M:%S"), e.data)
                for e in process.events.filter(type__startswith="compensation").order_by("seq")
            ]
            print(
                f"    {employee}: {notices.get(employee, 0)} notices, cancelled at "
                f"{process.updated_at:%H:%M:%S}; compensation events: {runs or 'none'}"
            )
    if ran != len(owed):
        broken.append(f"compensations: {len(owed) - ran} of {len(owed)} not exactly once")
    calls = collections.Counter(
        (c.system, c.endpoint, c.status_code // 100 * 100, c.replayed)
        for c in SimulatorCall.objects.all()
    )
    print("  simulator calls (system endpoint status replayed: count):")
    for (sys_, endpoint, status, replayed), n in sorted(calls.items()):
        print(f"    {sys_} {endpoint} {status}{' replayed' if replayed else ''}: {n}")
    try:
        from io import StringIO

        out = StringIO()
        call_command("verify_history", stdout=out)
        print(f"  verify_history: {out.getvalue().strip().splitlines()[-1]}")
    except Exception as exc:
        broken.append(f"verify_history: {exc}")
        print(f"  verify_history: {exc}")
    sms = read_messages(sms_file) if sms_file.exists() else []
    print(
        f"  SMS sent: {len(sms)} (incidents: {by_state.get('failed', 0)}); /healthz seen {dict(health)}"
    )
    if rss:
        first, last = rss[: max(1, len(rss) // 10)], rss[-max(1, len(rss) // 10) :]
        mean = lambda rows: sum(r[2] for r in rows) / len(rows)  # noqa: E731
        print(
            f"  worker RSS (MB, mean per worker): first {mean(first):.0f}, last {mean(last):.0f}, "
            f"max {max(r[3] for r in rss):.0f} ({len(rss)} samples)"
        )
    print("  RESULT: " + ("OK" if not broken else "BROKEN: " + "; ".join(broken)))
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
