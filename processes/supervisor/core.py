"""The supervisor's loop: heartbeats, a stall told from busy workers, restarts, recovery of
what a dead tree lost, its row for /healthz, one alert per outage."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django_q.brokers import get_broker, redis_broker
from django_q.conf import Conf
from django_q.tasks import async_task

from processes.supervisor.lane import (
    lane_name,
)
from processes.supervisor.leader import TimerLeader
from processes.supervisor.procfs import (
    become_subreaper,
    descendants,
    process_table,
    wakeups,
)
from processes.supervisor.record import Episode, RecordAndRecover
from processes.supervisor.tree import Tree, TreeControl

logger = logging.getLogger("processes.supervisor")  # one name in the logs, as documented


@dataclass
class Config:
    heartbeat: float
    stall: float
    grace: float
    supervisor_id: str
    cluster: str
    workers: int
    command: list[str]
    progress_dir: str | None = None
    timers: bool = True  # run the timer loop (``processes.engine.timer_loop``) in a thread
    timer_lease: float = 5.0  # seconds a dead host keeps the timer loop from the others

    @classmethod
    def from_settings(cls, **overrides) -> Config:
        values = {
            "heartbeat": settings.FLOWDESK_HEARTBEAT_SECONDS,
            "stall": settings.FLOWDESK_STALL_SECONDS,
            "grace": settings.FLOWDESK_SHUTDOWN_GRACE,
            "supervisor_id": settings.FLOWDESK_SUPERVISOR_ID,
            "cluster": Conf.CLUSTER_NAME,
            "workers": int(Conf.WORKERS),
            "command": [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "qcluster"],
            "progress_dir": os.environ.get("FLOWDESK_PROGRESS_DIR") or None,
            "timers": settings.FLOWDESK_TIMER_LOOP,
            "timer_lease": settings.FLOWDESK_TIMER_LEASE,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass
class Supervisor(TreeControl, RecordAndRecover):
    config: Config
    tree: Tree | None = None
    stop_signals: int = 0
    restarts: int = 0
    quick_exits: int = 0
    restart_at: float = 0.0
    seq: int = 0
    returned_seq: int = 0
    last_back: float = 0.0  # monotonic time a beat was last seen back
    next_beat: float = 0.0
    sweeps: list[float] = field(default_factory=list)  # monotonic times to run the sweep at
    takeovers: list[float] = field(default_factory=list)  # ... to have expired claims taken over
    db_ok: bool = True
    busy_logged: bool = False
    episode: Episode | None = None
    ran_seq: int = 0  # the newest beat a worker ran
    unreturned_since: float | None = None  # monotonic: a beat ran and has not come back since
    state: str = "starting"
    saved_at: float = 0.0  # monotonic time our row was last written (it lives by being written)
    peers_checked: float = 0.0  # monotonic time we last looked for peers gone
    peers_gone: set = field(default_factory=set)  # (supervisor, its last word) seen gone
    timer_leader: TimerLeader | None = None
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.lane = lane_name(self.config.cluster, self.config.supervisor_id)
        self.tick = max(0.05, min(1.0, self.config.heartbeat / 4))
        self.own_progress_dir = self.config.progress_dir is None
        if self.own_progress_dir:
            shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
            self.progress_dir = tempfile.mkdtemp(prefix="flowdesk-workers-", dir=shm)
        else:
            self.progress_dir = self.config.progress_dir
            os.makedirs(self.progress_dir, exist_ok=True)

    # The loop.

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        become_subreaper()
        logger.info(
            "supervising qcluster %s as %s: heartbeat every %ss, stall after %ss, "
            "shutdown grace %ss, lane %s",
            self.config.cluster,
            self.config.supervisor_id,
            self.config.heartbeat,
            self.config.stall,
            self.config.grace,
            self.lane,
        )
        self._register()
        timers = self._start_timer_loop()
        try:
            while not self.stop_signals:
                self._reap()
                now = time.monotonic()
                if self.tree is None:
                    if now >= self.restart_at:
                        self._start_tree()
                elif self.tree.returncode is not None:
                    self._tree_exited(now)
                    continue
                else:
                    if now >= self.next_beat:
                        self._send_beat(now)
                    self._watch_workers(now)
                    self._check(now)
                if now - self.saved_at >= self.config.heartbeat:  # our row's lifetime
                    self._save()
                if now - self.peers_checked >= max(1.0, self.config.heartbeat):
                    self._check_peers()
                if self.sweeps and now >= min(self.sweeps):
                    self.sweeps = [t for t in self.sweeps if t > now]
                    self._sweep("leases of killed steps expired")
                if self.takeovers and now >= min(self.takeovers):
                    self.takeovers = [t for t in self.takeovers if t > now]
                    self._take_over_claims()
                time.sleep(self.tick)
        finally:
            if timers is not None:
                timers[0].set()
            self._shutdown()
            if timers is not None:
                timers[1].join(timeout=10)
        return 0

    def _start_timer_loop(self):
        """Timers to the second, in a thread of this process: the timer loop does not depend
        on the cluster it supervises (a frozen cluster would freeze a django-q2 schedule). One
        loop across hosts: the thread runs it while this supervisor holds the timer lease."""
        if not self.config.timers:
            return None
        stop = threading.Event()
        leader = self.timer_leader = TimerLeader(
            self.config.supervisor_id, seconds=self.config.timer_lease
        )
        thread = threading.Thread(target=leader.run, args=(stop,), name="flowdesk-timers")
        thread.daemon = True
        thread.start()
        return stop, thread

    def _on_signal(self, signum, frame) -> None:
        self.stop_signals += 1
        if self.stop_signals > 1 and self.tree is not None:
            # A second signal: no more grace.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.tree.pgid, signal.SIGKILL)

    def _purge_lane(self) -> None:
        """Old beats are for the dead tree: drop them."""
        try:
            get_broker(self.lane).purge_queue()
        except Exception:
            logger.exception("cannot purge heartbeat lane %s", self.lane)

    def _clear_progress(self) -> None:
        for path in Path(self.progress_dir).iterdir():
            with contextlib.suppress(OSError):
                path.unlink()

    # The heartbeat and what it tells.

    def _send_beat(self, now: float) -> None:
        self.next_beat = now + self.config.heartbeat
        self.seq = max(self.seq + 1, time.time_ns() // 1_000_000)
        try:
            broker = self._lane_broker()
            async_task(
                "processes.worker.heartbeat",
                self.config.supervisor_id,
                self.seq,
                hook="processes.worker.heartbeat_returned",
                task_name=f"heartbeat-{self.seq}",
                group="flowdesk-heartbeat",
                save=True,  # the hook runs when the monitor saves the result
                timeout=30,
                broker=broker,
            )
            if isinstance(broker, redis_broker.Redis):  # a lane nobody reads any more expires
                broker.connection.expire(broker.list_key, int(max(60, 10 * self.config.stall)))
        except Exception as exc:
            logger.warning("cannot send heartbeat %s: %s", self.seq, exc)
        self._save(sent_seq=self.seq)

    def _lane_broker(self):
        broker = getattr(self, "_broker", None)
        if broker is None:
            broker = self._broker = get_broker(self.lane)
        return broker

    def _check(self, now: float) -> None:
        tree = self.tree
        row = self._read_row()
        if row is None:  # the database does not answer: the beat can't be seen; don't judge
            self.last_back = now
            return
        if row["returned_seq"] > self.returned_seq:
            self.returned_seq = row["returned_seq"]
            self.last_back = now
            self.quick_exits = 0
            if self.unreturned_since is not None:  # an older beat came back: count from now
                self.unreturned_since = now
        if self._sentinel_quiet(tree, now) > self.config.stall:
            self._restart(
                f"its sentinel (pid {tree.sentinel}) has not woken up for "
                f"{now - tree.sentinel_woke:.0f}s"
            )
            return

        silent = now - max(self.last_back, self.started)
        quiet = silent > self.config.stall
        stuck = self._results_stuck(now)
        if quiet and not stuck and self._all_workers_busy():
            if not self.busy_logged:
                logger.warning(
                    "heartbeat %.0fs late, but all %s workers run steps or deliveries within "
                    "their time",
                    silent,
                    self.config.workers,
                )
                self.busy_logged = True
            if self.episode is None:
                self._set_state("busy")
            return
        self.busy_logged = False
        if quiet and self.episode is None:
            self._stalled(silent)
        elif not quiet and self.episode is not None and self.last_back > self.episode.started:
            self._resumed()
        if quiet and now - tree.started > self.config.stall:
            self._restart(f"no heartbeat came back for {silent:.0f}s")
        elif self.episode is None:
            self._set_state("ok" if self.last_back > tree.started else "starting")

    def _sentinel_quiet(self, tree: Tree, now: float) -> float:
        """Seconds since the sentinel last woke up (its guard loop wakes twice a second)."""
        if tree.sentinel is None:
            table = process_table()
            children = [pid for pid, (parent, _, _) in table.items() if parent == tree.pgid]
            if not children:
                tree.sentinel_woke = now  # still starting
                return 0.0
            tree.sentinel = children[0]
        count = wakeups(tree.sentinel)
        if count is None:  # gone: qcluster exits next, and we restart it then
            tree.sentinel_woke = now
        elif count != tree.sentinel_wakeups:
            tree.sentinel_wakeups = count
            tree.sentinel_woke = now
        return now - tree.sentinel_woke

    def _watch_workers(self, now: float, *, tree_gone: bool = False) -> None:
        """A worker that died in the middle of a step: run that step again.

        Its progress note still names the step and until when it ran it (timeout + lease
        margin, the lease's own end). The sentinel replaces the worker, but with Redis nothing
        would run the step before the next periodic sweep: a step it had taken but not started
        yet is enqueued again now, one it had started is requeued by a sweep when its lease
        expires. A note that names no step is other work (an event delivery) whose claim ends
        at ``until``: its claims are taken over then (the ``claims_expired`` hook).

        ``tree_gone``: the whole tree was killed, every note is a dead worker's (its steps are
        left to ``_recover``, which enqueues every scheduled step again).
        """
        wall = time.time()
        for path in Path(self.progress_dir).iterdir():
            if not path.name.isdigit():
                continue
            if not tree_gone and os.path.exists(f"/proc/{path.name}"):
                continue
            until, task_ids = _note(path)
            with contextlib.suppress(OSError):
                path.unlink()
            if not until:
                continue
            if not task_ids:
                logger.warning(
                    "worker %s died in the middle of an event delivery: taking it over in "
                    "%.0fs, when its claim expires",
                    path.name,
                    max(0.0, until - wall),
                )
                self.takeovers.append(now + max(0.0, until - wall) + 0.5)
                continue
            if tree_gone:
                continue
            logger.warning(
                "worker %s died in the middle of step %s: enqueueing it again, and sweeping "
                "in %.0fs, when its lease expires",
                path.name,
                ", ".join(map(str, task_ids)),
                max(0.0, until - wall),
            )
            self._requeue(task_ids)
            if until > wall:
                self.sweeps.append(now + until - wall + 0.5)

    def _all_workers_busy(self) -> bool:
        """Every worker of the tree runs a step or a delivery within its time (or just finished
        one)."""
        tree_pids = set(descendants(self.tree.pgid))
        wall = time.time()
        grace = max(1.0, min(2.0, self.config.heartbeat))
        busy = 0
        for path in Path(self.progress_dir).iterdir():
            if not path.name.isdigit() or int(path.name) not in tree_pids:
                continue
            until, _ = _note(path)
            with contextlib.suppress(OSError):
                if until > wall or wall - path.stat().st_mtime < grace:
                    busy += 1
        return busy >= self.config.workers

    def _results_stuck(self, now: float) -> bool:
        """A beat ran on a worker (it notes so) but has not come back through the monitor."""
        try:
            ran = int((Path(self.progress_dir) / "beat").read_bytes() or 0)
        except (OSError, ValueError):
            ran = 0
        if ran > self.ran_seq:
            self.ran_seq = ran
            if self.unreturned_since is None and ran > self.returned_seq:
                self.unreturned_since = now
        if self.returned_seq >= self.ran_seq:
            self.unreturned_since = None
        return self.unreturned_since is not None and now - self.unreturned_since > self.config.stall

    # The supervisor's row.


def _note(path: Path) -> tuple[float, list[int]]:
    """A worker's progress note: (until when it runs steps or 0, the steps' task ids)."""
    try:
        until, *task_ids = path.read_bytes().split()
        return float(until), [int(t) for t in task_ids if int(t)]
    except (OSError, ValueError):
        return 0.0, []
