"""Soak: salary processes at a steady rate for N minutes on PostgreSQL + Redis, under chaos.

Run by hand (never a timed test), on its own PostgreSQL database and its own Redis server:

    .venv/bin/python bench/soak.py --minutes 30

- the simulators (gunicorn) answer 10% of calls with 500 (``--error-rate``) and get latency spikes
  (8 s for 15 s, every ~90 s; beyond the 10 s HTTP read timeout half the time);
- ``manage.py workers`` (the supervisor) runs the qcluster on a Redis server of its own
  (``redis-server`` on a free port, no persistence);
- chaos: a random worker is SIGKILLed every 20–60 s; the whole cluster is restarted (SIGTERM to the
  supervisor, then a new one) at 1/3 and 2/3 of the run; Redis is killed and comes back empty
  30 s later, once, at 1/2 (every queued message lost: the sweep must recover them);
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
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
KEY = "salary-soak"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Stack:
    """The processes the soak runs: Redis, the simulators' web server, the supervisor."""

    def __init__(self, env: dict, log_dir: Path, redis_port: int):
        self.env, self.log_dir, self.redis_port = env, log_dir, redis_port
        self.redis = self.web = self.workers = None
        self.workers_log = log_dir / "soak-workers.log"
        self.lock = threading.Lock()

    def _spawn(self, args, log_name):
        log = open(self.log_dir / log_name, "ab")  # noqa: SIM115 - lives as long as the process
        return subprocess.Popen(
            args,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_redis(self):
        self.redis = self._spawn(
            [
                "redis-server",
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            "soak-redis.log",
        )

    def start_web(self, port):
        self.web = self._spawn(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi:application",
                "-b",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "--threads",
                "8",
                "--timeout",
                "60",
            ],
            "soak-web.log",
        )

    def start_workers(self):
        self.workers = self._spawn([sys.executable, "manage.py", "workers"], "soak-workers.log")

    def stop_workers(self, timeout=90):
        proc = self.workers
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def worker_pids(self) -> list[int]:
        """The live qcluster workers (they say "ready for work at <pid>" in the log)."""
        text = self.workers_log.read_text(errors="replace") if self.workers_log.exists() else ""
        pids = {int(p) for p in re.findall(r"ready for work at (\d+)", text)}
        return sorted(p for p in pids if alive(p))

    def stop_all(self):
        self.stop_workers(timeout=60)
        for proc in (self.web, self.redis):
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)


def chaos(stack: Stack, seconds: float, stop: threading.Event, log: list, rss: list):
    """Kill a random worker every 20–60 s; restart the cluster at 1/3 and 2/3; Redis down 30 s at
    1/2; sample the workers' RSS every 15 s."""
    t0 = time.monotonic()
    restarts = [seconds / 3, 2 * seconds / 3]
    redis_at = seconds / 2
    next_kill = t0 + random.uniform(20, 60)
    next_rss = t0
    while not stop.is_set():
        now = time.monotonic()
        at = now - t0
        if at > seconds:
            break
        if now >= next_rss:
            pids = stack.worker_pids()
            sizes = [s for s in (rss_mb(p) for p in pids) if s]
            if sizes:
                rss.append((round(at), len(sizes), sum(sizes) / len(sizes), max(sizes)))
            next_rss = now + 15
        if restarts and at >= restarts[0]:
            restarts.pop(0)
            log.append((round(at), "restart the whole cluster (SIGTERM to the supervisor)"))
            stack.stop_workers()
            stack.start_workers()
        elif redis_at is not None and at >= redis_at:
            redis_at = None
            log.append((round(at), "Redis killed (unreachable, queue lost) for 30 s"))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(stack.redis.pid, signal.SIGKILL)
            stack.redis.wait(timeout=10)
            stop.wait(30)
            stack.start_redis()
            log.append((round(time.monotonic() - t0), "Redis back (empty)"))
        elif now >= next_kill:
            pids = stack.worker_pids()
            if pids:
                victim = random.choice(pids)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(victim, signal.SIGKILL)
                log.append((round(at), f"SIGKILL worker {victim}"))
            next_kill = now + random.uniform(20, 60)
        stop.wait(0.5)


def latency_spikes(stop: threading.Event, seconds: float):
    """Every ~90 s, 8 s of latency on one simulator for 15 s."""
    from integrations.models import SimulatorFault

    t0 = time.monotonic()
    while not stop.wait(random.uniform(60, 120)) and time.monotonic() - t0 < seconds:
        system = random.choice(["accounting", "bonus"])
        SimulatorFault.objects.filter(system=system).update(latency_ms=8000)
        stop.wait(15)
        SimulatorFault.objects.filter(system=system).update(latency_ms=0)


def soak_definition() -> dict:
    data = json.loads((ROOT / "processes" / "definitions" / "salary.json").read_text())
    data.update(key=KEY, workflow_name="Salary (soak)", component_name="SALARY-SOAK")
    tasks = {t["task_name"]: t for s in data["stages"] for t in s["tasks"]}
    tasks["bonus"]["compensate"] = "notify.rejection"
    return data


def main() -> None:  # noqa: C901 - a script, read top to bottom
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=float, default=20, help="processes started per minute")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--error-rate", type=float, default=0.1)
    parser.add_argument("--drain", type=float, default=10, help="minutes to let work finish")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--db-url", default="postgresql://postgres@127.0.0.1:5432/flowdesk_h13b_soak"
    )
    args = parser.parse_args()
    random.seed(args.seed)

    name = args.db_url.rsplit("/", 1)[1]
    admin_url = args.db_url.rsplit("/", 1)[0] + "/postgres"
    for sql in (f"drop database if exists {name} with (force)", f"create database {name}"):
        subprocess.run(["psql", admin_url, "-qc", sql], capture_output=True, check=True)
    log_dir = ROOT / "var"
    log_dir.mkdir(exist_ok=True)
    sms_file = log_dir / "soak-sms.jsonl"
    sms_file.unlink(missing_ok=True)
    redis_port, web_port = free_port(), free_port()
    base = f"http://127.0.0.1:{web_port}"
    queue = f"soak{uuid.uuid4().hex[:6]}"
    env = dict(
        os.environ,
        DATABASE_URL=args.db_url,
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY", "bench-only-" + "x" * 50),
        FLOWDESK_HTTPS="0",
        FLOWDESK_Q_NAME=queue,
        FLOWDESK_Q_WORKERS=str(args.workers),
        FLOWDESK_Q_TIMEOUT="120",
        FLOWDESK_Q_RETRY="150",
        FLOWDESK_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        FLOWDESK_REENQUEUE_AFTER="30",
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
        threading.Thread(target=chaos, args=(stack, seconds, stop, chaos_log, rss), daemon=True),
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
