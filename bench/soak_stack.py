"""The processes bench/soak.py runs and the chaos it makes: Redis, the simulators' web server,
the worker supervisor; worker kills, cluster restarts, a Redis outage, latency spikes."""

from __future__ import annotations

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
from pathlib import Path

from common import ROOT

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


def chaos(
    stack: Stack,
    seconds: float,
    stop: threading.Event,
    log: list,
    rss: list,
    kill_every: tuple[float, float] = (20, 60),
    outage: float = 30,
):
    """Kill a random worker every 20–60 s (``kill_every``); restart the cluster at 1/3 and 2/3;
    Redis down 30 s (``outage``) at 1/2; sample the workers' RSS every 15 s."""
    t0 = time.monotonic()
    restarts = [seconds / 3, 2 * seconds / 3]
    redis_at = seconds / 2
    next_kill = t0 + random.uniform(*kill_every)
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
            log.append((round(at), f"Redis killed (unreachable, queue lost) for {outage:g} s"))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(stack.redis.pid, signal.SIGKILL)
            stack.redis.wait(timeout=10)
            stop.wait(outage)
            stack.start_redis()
            log.append((round(time.monotonic() - t0), "Redis back (empty)"))
        elif now >= next_kill:
            pids = stack.worker_pids()
            if pids:
                victim = random.choice(pids)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(victim, signal.SIGKILL)
                log.append((round(at), f"SIGKILL worker {victim}"))
            next_kill = now + random.uniform(*kill_every)
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
