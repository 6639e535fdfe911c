"""Worker supervision: ``manage.py workers`` runs django-q2's ``qcluster`` and keeps it working.

Why. django-q2 hands tasks from its pusher to its workers, and results to its monitor, through
multiprocessing queues. A process SIGKILLed while it holds one of their locks (an idle worker
blocked in ``get()``, the idle monitor, the pusher in ``put()``) leaves that lock held for good:
the sentinel replaces the dead process, the new one blocks on the same lock, and the cluster
freezes with every process alive. Nothing inside the cluster can see it.

How. The supervisor runs ``qcluster`` as its child, in a process group of its own, and every
``FLOWDESK_HEARTBEAT_SECONDS`` sends a tiny task (``processes.worker.heartbeat``) through the
broker. A worker runs it and its hook (``heartbeat_returned``) runs in the monitor, which records
it on the supervisor's ``ClusterHeartbeat`` row: a beat that comes back has gone pusher -> worker
-> monitor. Each supervisor has a heartbeat *lane* (its own broker key) that its cluster's pusher
reads before the shared queue (``RedisBroker`` / ``OrmBroker`` below): a beat is never answered
by another machine's cluster and never waits behind a backlog. The supervisor restarts the whole
process tree (SIGKILL to the group, a new ``qcluster``) when:

- no beat came back for ``FLOWDESK_STALL_SECONDS`` — unless every worker is running a step still
  within its timeout (the beat is then only waiting for a free worker; each worker says so in a
  small file, see ``processes.worker.progress``) and no beat that a worker ran is missing (one
  that ran but never came back means the results are stuck, however busy the workers are);
- the sentinel stopped waking up (its guard loop wakes twice a second; one blocked on a lock held
  by a dead worker no longer reincarnates, times out or schedules anything);
- ``qcluster`` exited (its sentinel died, or it was killed): at once, with back-off when it keeps
  exiting right after it started.

A thread of the supervisor runs the timer loop (``processes.worker.timer_loop``): retry
back-offs, lost enqueues, leases, escalations, deadlines and compensations to the second, whether
or not the cluster works. After each (re)start it does not wait for the periodic sweep: it re-enqueues the scheduled service
steps (Redis tasks that sat in the dead queues are gone; a duplicate is skipped by the engine) and
runs the timer sweep, then runs it again when the leases of the steps that were running have
expired, so a step killed mid-run is requeued within its timeout + ``FLOWDESK_LEASE_MARGIN``.
When a single worker dies in the middle of a step (the sentinel replaces it, nothing freezes),
its note names the step: enqueued again at once, or swept when its lease expires.

A stall (no beat for ``FLOWDESK_STALL_SECONDS``, not explained by busy workers) is logged at
ERROR and sends one SMS to the on-call admins; the first beat back after it sends another.
SIGTERM or SIGINT: qcluster gets SIGTERM and ``FLOWDESK_SHUTDOWN_GRACE`` seconds to finish its
running steps, then the group is SIGKILLed (qcluster can hang on SIGTERM, django-q2 #346); a
second signal skips the grace. The supervisor is a child subreaper, so processes orphaned by a
kill are reparented to it and reaped: no zombies.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connections
from django.utils import timezone
from django_q.brokers import get_broker, orm, redis_broker
from django_q.conf import Conf
from django_q.tasks import async_task

logger = logging.getLogger(__name__)

LANE_ENV = "FLOWDESK_HEARTBEAT_LANE"
QUICK_EXIT = 30.0  # a qcluster that exits sooner than this after its start is crash-looping
MAX_BACKOFF = 30.0
ORM_LANE_POLL = 0.5  # seconds between two looks at the heartbeat lane by the ORM pusher


class _QuietHeartbeats(logging.Filter):
    """Keep django-q's INFO lines about heartbeats (three per beat) out of the logs.

    Installed on import: the sentinel imports this module (the broker class) before it forks the
    workers, pusher and monitor, so the filter is in every process of a cluster.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        message = record.getMessage()
        return "heartbeat" not in message and ".beat." not in message


logging.getLogger("django-q").addFilter(_QuietHeartbeats())


# --- the heartbeat lane: each supervised cluster's pusher reads its own lane first ---------------


def lane_name(cluster: str, supervisor_id: str) -> str:
    """The broker key of one supervisor's heartbeats (OrmQ.key holds 100 characters)."""
    name = f"{cluster}.beat.{supervisor_id}"
    if len(name) > 90:
        digest = hashlib.sha1(supervisor_id.encode()).hexdigest()[:16]
        name = f"{cluster[:60]}.beat.{digest}"
    return name


class RedisBroker(redis_broker.Redis):
    """django-q2's Redis broker; a supervised cluster's pusher pops its heartbeat lane first.

    One BLPOP on two keys (Redis serves the first non-empty one in order): no extra round trip.
    """

    def dequeue(self):
        lane = os.environ.get(LANE_ENV)
        if not lane:
            return super().dequeue()
        task = self.connection.blpop([f"django_q:{lane}:q", self.list_key], 1)
        if task:
            return [(None, task[1])]
        return None


class OrmBroker(orm.ORM):
    """django-q2's ORM broker; a supervised cluster's pusher looks at its heartbeat lane first,
    at most every ``ORM_LANE_POLL`` seconds (one small query on the queue table, which holds
    only queued tasks)."""

    _lane_seen = 0.0

    def dequeue(self):
        lane = os.environ.get(LANE_ENV)
        now = time.monotonic()
        if lane and now - self._lane_seen >= ORM_LANE_POLL:
            self._lane_seen = now
            for task in self.get_connection().filter(key=lane, lock__lt=timezone.now())[:1]:
                taken = (
                    self.get_connection()
                    .filter(id=task.id, lock=task.lock)
                    .update(lock=self.timeout(task))
                )
                if taken:
                    return [(task.pk, task.payload)]
        return super().dequeue()


# --- the process table ----------------------------------------------------------------------------


def process_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, process group, state letter), read from /proc."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        table[int(name)] = (int(fields[1]), int(fields[2]), fields[0])
    return table


def descendants(pid: int, table: dict | None = None) -> list[int]:
    """Every process below ``pid`` (children, their children, ...)."""
    table = table if table is not None else process_table()
    children: dict[int, list[int]] = {}
    for child, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(child)
    found, todo = [], list(children.get(pid, ()))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, ()))
    return found


def group_members(pgid: int, table: dict | None = None) -> list[int]:
    """Processes of process group ``pgid`` that are not zombies."""
    table = table if table is not None else process_table()
    return [pid for pid, (_, group, state) in table.items() if group == pgid and state != "Z"]


def wakeups(pid: int) -> int | None:
    """Voluntary context switches of ``pid``'s main thread (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("voluntary_ctxt_switches:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def become_subreaper() -> None:
    """Adopt orphaned descendants (PR_SET_CHILD_SUBREAPER) so their exit status is reaped here."""
    # Not Linux: orphans go to init, which reaps them.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)


# --- the supervisor -------------------------------------------------------------------------------


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
    timers: bool = True  # run the timer loop (``processes.worker.timer_loop``) in a thread

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
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass
class Tree:
    """One qcluster process tree: its main process (our child) and what we know about it."""

    proc: subprocess.Popen
    started: float  # monotonic
    returncode: int | None = None
    sentinel: int | None = None
    sentinel_wakeups: int | None = None
    sentinel_woke: float = 0.0  # monotonic time its wake-up count last changed

    @property
    def pgid(self) -> int:
        return self.proc.pid


@dataclass
class Episode:
    """A stall: from the moment the heartbeat was declared lost to the first beat back."""

    since: dt.datetime
    started: float  # monotonic


@dataclass
class Supervisor:
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
    db_ok: bool = True
    busy_logged: bool = False
    episode: Episode | None = None
    ran_seq: int = 0  # the newest beat a worker ran
    unreturned_since: float | None = None  # monotonic: a beat ran and has not come back since
    state: str = "starting"
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
                if self.sweeps and now >= min(self.sweeps):
                    self.sweeps = [t for t in self.sweeps if t > now]
                    self._sweep("leases of killed steps expired")
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
        on the cluster it supervises (a frozen cluster would freeze a django-q2 schedule)."""
        if not self.config.timers:
            return None
        from processes import worker

        stop = threading.Event()

        def loop():
            try:
                worker.timer_loop(stop)
            finally:
                connections.close_all()

        thread = threading.Thread(target=loop, name="flowdesk-timers", daemon=True)
        thread.start()
        logger.info("timer loop running (tick %ss)", settings.FLOWDESK_TIMER_TICK)
        return stop, thread

    def _on_signal(self, signum, frame) -> None:
        self.stop_signals += 1
        if self.stop_signals > 1 and self.tree is not None:
            # A second signal: no more grace.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.tree.pgid, signal.SIGKILL)

    # Starting, killing and restarting the tree.

    def _start_tree(self) -> None:
        self._clear_progress()
        self._purge_lane()
        env = dict(os.environ)
        env[LANE_ENV] = self.lane
        env["FLOWDESK_PROGRESS_DIR"] = self.progress_dir
        proc = subprocess.Popen(self.config.command, env=env, process_group=0)
        now = time.monotonic()
        self.tree = Tree(proc=proc, started=now, sentinel_woke=now)
        self.unreturned_since = None
        self.next_beat = now  # the first beat waits in the lane until the pusher is up
        logger.info("qcluster started: pid %s (process group %s)", proc.pid, proc.pid)
        self._save(tree_pgid=proc.pid, tree_started_at=timezone.now())
        self._recover()

    def _tree_exited(self, now: float) -> None:
        tree = self.tree
        lived = now - tree.started
        logger.error(
            "qcluster %s exited with %s after %.1fs: restarting its process tree",
            tree.pgid,
            _exit_text(tree.returncode),
            lived,
        )
        self._kill_tree()
        self.restarts += 1
        # Killed, or its sentinel died (it then exits with 0): start again at once. An error
        # exit right after the start (the database is down, a bad setting): back off.
        crashed = tree.returncode is not None and tree.returncode > 0
        self.quick_exits = self.quick_exits + 1 if crashed and lived < QUICK_EXIT else 0
        delay = min(MAX_BACKOFF, 2.0 ** (self.quick_exits - 2)) if self.quick_exits > 1 else 0.0
        if delay:
            logger.error("qcluster keeps failing: next start in %.0fs", delay)
        self.restart_at = now + delay

    def _restart(self, reason: str) -> None:
        logger.error("restarting qcluster %s: %s", self.tree.pgid, reason)
        self._kill_tree()
        self.restarts += 1
        self.restart_at = 0.0
        self._start_tree()

    def _kill_tree(self, timeout: float = 10.0) -> None:
        """SIGKILL the tree's process group and wait until it is gone (reaping what we can)."""
        tree, self.tree = self.tree, None
        if tree is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(tree.pgid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while True:
            self._reap(tree)
            table = process_table()
            left = group_members(tree.pgid, table)
            # Zombies count too: a killed worker's exit is reparented to us (the subreaper) only
            # once its parent is reaped, so wait until the whole group, zombies included, is gone.
            ours = {os.getpid(), *(pid for pid, (_, g, _) in table.items() if g == tree.pgid)}
            zombies = [
                pid
                for pid, (parent, group, _) in table.items()
                if group == tree.pgid and parent in ours
            ]
            if not left and not zombies and tree.returncode is not None:
                break
            if time.monotonic() > deadline:
                logger.error("processes %s of qcluster %s outlived SIGKILL", left, tree.pgid)
                break
            time.sleep(0.02)

    def _reap(self, tree: Tree | None = None) -> None:
        """Collect the exit status of our child and of orphans we adopted."""
        tree = tree or self.tree
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if tree is not None and pid == tree.proc.pid:
                tree.returncode = tree.proc.returncode = os.waitstatus_to_exitcode(status)

    def _recover(self) -> None:
        """Run again at once what the dead tree may have lost; sweep again once leases expire."""
        from processes import worker
        from processes.models import TaskInstance, TaskState

        try:
            close_old_connections()
            requeued = worker.requeue_scheduled()
            swept = worker.sweep_timers()
            now = timezone.now()
            leases = (
                TaskInstance.objects.filter(state=TaskState.RUNNING, wake_at__gt=now)
                .order_by("-wake_at")
                .values_list("wake_at", flat=True)
                .first()
            )
        except Exception:
            logger.exception("re-enqueueing after the (re)start failed; the timer sweep will")
            return
        logger.info(
            "after the (re)start: %s scheduled steps enqueued again, sweep %s",
            requeued,
            swept or "found nothing due",
        )
        if leases is not None:
            cap = Conf.TIMEOUT + settings.FLOWDESK_LEASE_MARGIN
            wait = min(cap, (leases - now).total_seconds()) + 0.5
            self.sweeps.append(time.monotonic() + wait)
            logger.info("running steps' leases expire within %.0fs: sweeping again then", wait)

    def _sweep(self, why: str) -> None:
        from processes import worker

        try:
            close_old_connections()
            outcome = worker.sweep_timers()
        except Exception:
            logger.exception("timer sweep failed")
            return
        logger.info("sweep (%s): %s", why, outcome or "nothing due")

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
                    "heartbeat %.0fs late, but all %s workers run steps within their timeout",
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

    def _watch_workers(self, now: float) -> None:
        """A worker that died in the middle of a step: run that step again.

        Its progress note still names the step and until when it ran it (timeout + lease
        margin, the lease's own end). The sentinel replaces the worker, but with Redis nothing
        would run the step before the next periodic sweep: a step it had taken but not started
        yet is enqueued again now, one it had started is requeued by a sweep when its lease
        expires.
        """
        wall = time.time()
        for path in Path(self.progress_dir).iterdir():
            if not path.name.isdigit() or os.path.exists(f"/proc/{path.name}"):
                continue
            until, task_id = _note(path)
            with contextlib.suppress(OSError):
                path.unlink()
            if not until:
                continue
            logger.warning(
                "worker %s died in the middle of step %s: enqueueing it again, and sweeping "
                "in %.0fs, when its lease expires",
                path.name,
                task_id,
                max(0.0, until - wall),
            )
            self._requeue([task_id])
            if until > wall:
                self.sweeps.append(now + until - wall + 0.5)

    def _requeue(self, task_ids) -> None:
        from processes import worker

        try:
            close_old_connections()
            worker.requeue_scheduled(task_ids=task_ids)
        except Exception:
            logger.exception("cannot enqueue steps %s again; the timer sweep will", task_ids)

    def _all_workers_busy(self) -> bool:
        """Every worker of the tree runs a step within its timeout (or just finished one)."""
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

    def _stalled(self, silent: float) -> None:
        since = timezone.now() - dt.timedelta(seconds=silent)
        self.episode = Episode(since=since, started=time.monotonic())
        logger.error(
            "workers stalled: cluster %s on %s returned no heartbeat for %.0fs (%s restarts so far)",
            self.config.cluster,
            self.config.supervisor_id,
            silent,
            self.restarts,
        )
        self._set_state("stalled", stalled_since=since)
        self._alert("cluster_stalled", since=since, silent_for=silent, restarts=self.restarts + 1)

    def _resumed(self) -> None:
        episode, self.episode = self.episode, None
        stalled_for = (timezone.now() - episode.since).total_seconds()
        logger.warning(
            "workers resumed: cluster %s on %s answered again after %.0fs (%s restarts so far)",
            self.config.cluster,
            self.config.supervisor_id,
            stalled_for,
            self.restarts,
        )
        self._set_state("ok", stalled_since=None)
        self._alert(
            "cluster_resumed", since=episode.since, stalled_for=stalled_for, restarts=self.restarts
        )

    def _alert(self, name: str, **kwargs) -> None:
        from integrations import alerts

        getattr(alerts, name)(
            supervisor=self.config.supervisor_id, cluster=self.config.cluster, **kwargs
        )

    # The supervisor's row.

    def _register(self) -> None:
        """Create our row; SIGKILL a tree an earlier run of this supervisor left behind."""
        from processes.models import ClusterHeartbeat

        me = self.config.supervisor_id
        try:
            old = ClusterHeartbeat.objects.filter(pk=me).first()
            if old is not None and old.pid and old.pid != os.getpid():
                if old.state != "stopped" and "workers" in cmdline(old.pid):
                    raise SystemExit(
                        f"supervisor {me} already runs as pid {old.pid}: give this one another "
                        "FLOWDESK_SUPERVISOR_ID"
                    )
                left = old.tree_pgid and [
                    pid for pid in group_members(old.tree_pgid) if "qcluster" in cmdline(pid)
                ]
                if left:
                    logger.warning("killing qcluster %s left by an earlier run", old.tree_pgid)
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(old.tree_pgid, signal.SIGKILL)
            row, _ = ClusterHeartbeat.objects.update_or_create(
                pk=me,
                defaults={
                    "cluster": self.config.cluster,
                    "state": "starting",
                    "pid": os.getpid(),
                    "tree_pgid": None,
                    "stalled_since": None,
                    "restarts": 0,
                    "checked_at": timezone.now(),
                },
            )
            self.returned_seq = row.returned_seq  # only beats of this run count
        except SystemExit:
            raise
        except Exception:
            logger.exception("cannot register supervisor %s", me)

    def _read_row(self) -> dict | None:
        from processes.models import ClusterHeartbeat

        try:
            close_old_connections()
            row = (
                ClusterHeartbeat.objects.filter(pk=self.config.supervisor_id)
                .values("returned_seq")
                .first()
            )
            if row is None:
                self._register()
                row = {"returned_seq": 0}
        except Exception as exc:
            if self.db_ok:
                logger.error("database does not answer: heartbeat not checked (%s)", exc)
            self.db_ok = False
            return None
        if not self.db_ok:
            logger.warning("database answers again")
        self.db_ok = True
        return row

    def _set_state(self, state: str, **fields) -> None:
        if state != self.state or fields:
            self.state = state
            self._save(**fields)

    def _save(self, **fields) -> None:
        from processes.models import ClusterHeartbeat

        try:
            ClusterHeartbeat.objects.filter(pk=self.config.supervisor_id).update(
                state=self.state, restarts=self.restarts, checked_at=timezone.now(), **fields
            )
        except Exception as exc:
            logger.warning("cannot update supervisor row: %s", exc)

    # Shutting down.

    def _shutdown(self) -> None:
        tree = self.tree
        if tree is not None and tree.returncode is None:
            grace = 0.0 if self.stop_signals > 1 else self.config.grace
            logger.info("stopping qcluster %s (up to %.0fs for running steps)", tree.pgid, grace)
            with contextlib.suppress(ProcessLookupError):
                os.kill(tree.pgid, signal.SIGTERM)
            asked = time.monotonic()
            sentinel_gone = None
            while tree.returncode is None and time.monotonic() < asked + grace:
                self._reap(tree)
                if self.stop_signals > 1:
                    break
                if sentinel_gone is None and not self._sentinel_alive(tree):
                    sentinel_gone = time.monotonic()
                if sentinel_gone is not None and time.monotonic() > sentinel_gone + 2:
                    # Its sentinel is gone and qcluster is still there (SIGTERM to every
                    # process, as systemd sends, kills the sentinel at once): qcluster may hang
                    # on a lock the sentinel held (django-q2 #346). Don't wait for the grace.
                    logger.warning(
                        "qcluster %s still runs 2s after its sentinel ended: SIGKILL", tree.pgid
                    )
                    break
                time.sleep(0.05)
            else:
                if tree.returncode is None:
                    logger.warning("qcluster %s did not stop in %.0fs: SIGKILL", tree.pgid, grace)
        self._kill_tree()  # the rest of the group, in any case
        self._reap()
        self.state = "stopped"
        self._save()
        if self.own_progress_dir:
            shutil.rmtree(self.progress_dir, ignore_errors=True)
        logger.info("supervisor stopped")

    @staticmethod
    def _sentinel_alive(tree: Tree) -> bool:
        if tree.sentinel is None:
            return True  # not known yet: give qcluster its grace
        state = process_table().get(tree.sentinel, (0, 0, "Z"))[2]
        return state != "Z"


def _note(path: Path) -> tuple[float, int]:
    """A worker's progress note: (until when it runs a step or 0, the step's task id)."""
    try:
        until, task_id = path.read_bytes().split()
        return float(until), int(task_id)
    except (OSError, ValueError):
        return 0.0, 0


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return f"code {code}"
