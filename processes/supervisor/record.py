"""What the supervisor records (its ClusterHeartbeat row, the stall and resume alerts) and how
it recovers the work a dead tree lost (requeue, sweep)."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import signal
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone
from django_q.conf import Conf

from processes.supervisor.procfs import cmdline, group_members

logger = logging.getLogger("processes.supervisor")  # one name in the logs, as documented


@dataclass
class Episode:
    """A stall: from the moment the heartbeat was declared lost to the first beat back."""

    since: dt.datetime
    started: float  # monotonic


class RecordAndRecover:
    """A part of ``Supervisor``: its row, its alerts, and recovery after a restart."""

    def _recover(self) -> None:
        """Run again at once what the dead tree may have lost; sweep again once leases expire."""
        from processes import engine
        from processes.models import TaskInstance, TaskState

        try:
            close_old_connections()
            requeued = engine.requeue_scheduled()
            swept = engine.timers_sweep()
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

    def _check_peers(self) -> None:
        """A peer of our queue is gone (its host vanished, say SIGKILLed with its cluster): with
        Redis, the steps its pusher and queues held went with it. Enqueue the scheduled steps
        again now, as after our own restart, rather than after ``FLOWDESK_REENQUEUE_AFTER``; the
        steps it was running come back when their leases expire (the timer loop). One survivor
        does it, the one running the timer loop (every one when none runs it here)."""
        from processes.models import ClusterHeartbeat

        self.peers_checked = time.monotonic()
        if self.timer_leader is not None and not self.timer_leader.leading:
            return
        now = timezone.now()
        silent = dt.timedelta(seconds=self.config.stall + self.config.heartbeat)
        expired = dt.timedelta(seconds=settings.FLOWDESK_SUPERVISOR_EXPIRY)
        try:
            gone = set(
                ClusterHeartbeat.objects.filter(
                    cluster=self.config.cluster,
                    checked_at__lt=now - silent,
                    checked_at__gte=now - expired,
                )
                .exclude(pk=self.config.supervisor_id)
                .exclude(state=ClusterHeartbeat.State.STOPPED)
                .values_list("pk", "checked_at")
            )
        except Exception as exc:
            if self.db_ok:  # an outage is logged once, by the row's read
                logger.warning("cannot look for supervisors gone: %s", exc)
            return
        new = gone - self.peers_gone
        if not new:
            return
        self.peers_gone |= new
        for supervisor_id, checked_at in sorted(new):
            logger.warning(
                "supervisor %s of queue %s is gone (silent since %s): enqueueing the scheduled "
                "steps again",
                supervisor_id,
                self.config.cluster,
                checked_at.isoformat(timespec="seconds"),
            )
        self._recover()

    def _sweep(self, why: str) -> None:
        from processes import engine

        try:
            close_old_connections()
            outcome = engine.timers_sweep()
        except Exception:
            logger.exception("timer sweep failed")
            return
        logger.info("sweep (%s): %s", why, outcome or "nothing due")

    def _take_over_claims(self) -> None:
        """A dead worker's claims (not steps: event deliveries) expired: have them taken over."""
        from processes import hooks

        try:
            close_old_connections()
        except Exception:
            logger.exception("database unavailable: the periodic sweeps take the claims over")
            return
        hooks.emit("claims_expired")  # a failing listener is logged there

    def _requeue(self, task_ids) -> None:
        from processes import engine

        try:
            close_old_connections()
            engine.requeue_scheduled(task_ids=task_ids)
        except Exception:
            logger.exception("cannot enqueue steps %s again; the timer sweep will", task_ids)

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
        """Announce the stall or its end (``processes.hooks``: the integrations send the SMS)."""
        from processes import hooks

        hooks.emit(
            name, supervisor=self.config.supervisor_id, cluster=self.config.cluster, **kwargs
        )

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
            expired = timezone.now() - dt.timedelta(seconds=settings.FLOWDESK_SUPERVISOR_EXPIRY)
            gone = ClusterHeartbeat.objects.filter(checked_at__lt=expired).exclude(pk=me)
            for supervisor_id in gone.values_list("pk", flat=True):
                logger.info(
                    "forgetting supervisor %s: silent for longer than its expiry", supervisor_id
                )
            gone.delete()
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

    def _deregister(self) -> None:
        """A clean stop: our row goes at once, so /healthz counts only who serves."""
        from processes.models import ClusterHeartbeat

        try:
            ClusterHeartbeat.objects.filter(pk=self.config.supervisor_id, pid=os.getpid()).delete()
        except Exception as exc:
            logger.warning("cannot remove supervisor row (it expires by itself): %s", exc)

    def _save(self, **fields) -> None:
        from processes.models import ClusterHeartbeat

        self.saved_at = time.monotonic()
        try:
            ClusterHeartbeat.objects.filter(pk=self.config.supervisor_id).update(
                state=self.state, restarts=self.restarts, checked_at=timezone.now(), **fields
            )
        except Exception as exc:
            logger.warning("cannot update supervisor row: %s", exc)
