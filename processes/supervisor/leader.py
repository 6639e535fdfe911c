"""One timer loop at a time across hosts: whoever holds the ``TimerLease`` row runs it.

Every supervisor (and ``manage.py timers``) runs a ``TimerLeader`` thread. On PostgreSQL it
takes or renews the lease every third of ``FLOWDESK_TIMER_LEASE`` seconds and runs the timer
loop (``processes.engine.timer_loop``) only while it holds it: a host that dies (SIGKILL, power)
stops renewing, and another takes the loop over once the lease expired, within
``FLOWDESK_TIMER_LEASE`` + a third of it. A clean stop gives the lease back at once.

Why a row and not ``pg_try_advisory_lock``: a session advisory lock belongs to a server
connection, and behind PgBouncer in transaction mode a session is not ours between two
transactions (the lock would be held by whichever client gets that connection next, or
released under us). The row needs nothing but single statements, on any pooler; the expiry is
the database's clock, so hosts' clocks don't matter. On SQLite (one host) the loop just runs.

Two loops for a moment (a paused leader resuming after its lease expired) cost nothing but work:
every timer is acted on under its process's row lock and cleared, so it fires once. A leader
also stops its loop when its own clock says its lease ran out and it could not renew it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time

from django.db import IntegrityError, close_old_connections, connection, connections, transaction
from django.db.models import DateTimeField, ExpressionWrapper
from django.db.models.functions import Now

logger = logging.getLogger("processes.supervisor")  # one name in the logs, as documented

LEASE = "timers"


def holder_name(supervisor_id: str) -> str:
    """A holder names its host (the supervisor id) and its process: a restarted supervisor is a
    new holder, never one that renews what its dead predecessor held."""
    return f"{supervisor_id}/{os.getpid()}"[:150]


def hold_lease(holder: str, seconds: float) -> bool:
    """Take the lease or renew it (True: ours until ``seconds`` from now, database time)."""
    from processes.models import TimerLease

    until = ExpressionWrapper(Now() + dt.timedelta(seconds=seconds), output_field=DateTimeField())
    lease = TimerLease.objects.filter(name=LEASE)
    if lease.filter(holder=holder).update(expires_at=until):
        return True
    if lease.filter(expires_at__lt=Now()).update(
        holder=holder, expires_at=until, acquired_at=Now()
    ):
        return True
    try:
        with transaction.atomic():
            TimerLease.objects.create(
                name=LEASE, holder=holder, expires_at=until, acquired_at=Now()
            )
    except IntegrityError:  # another holder's, still valid
        return False
    return True


def release_lease(holder: str) -> None:
    """Give the lease back (a clean stop): another host takes the loop at its next try."""
    from processes.models import TimerLease

    TimerLease.objects.filter(name=LEASE, holder=holder).delete()


def lease_holder() -> str | None:
    """Who holds a valid lease now (None: nobody runs the timer loop on PostgreSQL)."""
    from processes.models import TimerLease

    return (
        TimerLease.objects.filter(name=LEASE, expires_at__gte=Now())
        .values_list("holder", flat=True)
        .first()
    )


class TimerLeader:
    """Runs the timer loop in a thread of its own while this process holds the lease."""

    def __init__(self, supervisor_id: str, *, seconds: float, tick: float | None = None):
        self.holder = holder_name(supervisor_id)
        self.seconds = max(1.0, seconds)
        self.tick = tick
        self.renew_every = self.seconds / 3
        self._loop: tuple[threading.Event, threading.Thread] | None = None

    @property
    def leading(self) -> bool:
        """This process runs the timer loop now."""
        return self._loop is not None

    def run(self, stop: threading.Event) -> None:
        """Until ``stop``: take or renew the lease, run or stop the loop accordingly."""
        shared = connection.vendor == "postgresql"  # SQLite: one host, the loop just runs
        held_until = 0.0  # monotonic: our own idea of when our lease ends
        waiting_logged = False
        try:
            while not stop.is_set():
                asked = time.monotonic()
                held = True if not shared else self._try_hold()
                if held:
                    held_until = asked + self.seconds
                leading = held or (held is None and time.monotonic() < held_until)
                if leading and self._loop is None:
                    self._start_loop()
                    waiting_logged = False
                elif not leading and self._loop is not None:
                    logger.warning("timer loop lease lost: stopping the loop here")
                    self._stop_loop()
                if held is False and not waiting_logged:
                    logger.info("another host runs the timer loop: taking it over if it stops")
                    waiting_logged = True
                if not shared:
                    stop.wait()
                stop.wait(self.renew_every)
        finally:
            self._stop_loop()
            if shared:
                try:
                    release_lease(self.holder)
                except Exception:
                    logger.exception("cannot release the timer loop lease (it expires by itself)")
            connections.close_all()

    def _try_hold(self) -> bool | None:
        """True or False; None when the database does not answer (we don't know)."""
        try:
            close_old_connections()
            return hold_lease(self.holder, self.seconds)
        except Exception as exc:
            logger.warning("cannot renew the timer loop lease: %s", exc)
            return None

    def _start_loop(self) -> None:
        from processes import engine

        loop_stop = threading.Event()

        def loop():
            try:
                engine.timer_loop(loop_stop, tick=self.tick)
            finally:
                connections.close_all()

        thread = threading.Thread(target=loop, name="flowdesk-timer-loop", daemon=True)
        thread.start()
        self._loop = (loop_stop, thread)
        logger.info("timer loop running here (lease holder %s)", self.holder)

    def _stop_loop(self) -> None:
        if self._loop is None:
            return
        loop_stop, thread = self._loop
        self._loop = None
        loop_stop.set()
        thread.join(timeout=30)
