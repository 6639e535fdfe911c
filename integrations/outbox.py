"""The durable outbox: one mechanism for everything Flowdesk sends out and must not lose.

A user of it (an ``Outbox`` subclass, registered: the SMS alerts, the event deliveries) brings a
row model (``OutboxRow``'s fields), what makes a queue, and how one row is sent; everything else
is done here, the same way for every user:

- **Queues, one run at a time.** Rows with the same ``queue_fields`` form a queue (an incident's
  SMS; one subscription's events of one process). A run (``run``: the user's django-q2 task, the
  sweep, or a direct call) sends a queue's due rows one by one. ``in_order``: only the queue's
  first unfinished row (its head) is ever sent, so a later row waits while an earlier one is
  pending, being sent, or dead.
- **Claimed under lock, once per attempt.** A row is claimed (``sending``, ``attempts`` + 1,
  ``claimed``: the user's attempt log) in a short transaction holding its row lock, sent outside
  any transaction, and its outcome recorded under the lock again. A run that finds it claimed
  leaves it; an outcome whose claim was taken over meanwhile changes nothing but its log.
- **Back-off, dead letters, replay.** A failed attempt is tried again after ``backoff`` (doubling
  from ``first_backoff``, capped at ``MAX_BACKOFF``); after ``max_attempts`` the row is dead
  (``Outbox.dead``) until ``replay`` (admin, API) gives it another round of attempts.
- **Busy like a step; claims taken over when they expire.** One attempt takes at most the
  user's ``send_seconds``; meanwhile the worker's progress note says it is busy until its claim
  would expire (``processes.progress``), so a heartbeat waiting behind slow sends is not a stall.
  A claim older than ``send_seconds`` + ``FLOWDESK_LEASE_MARGIN`` is a worker that died
  mid-send: the supervisor has it taken over when it expires (``take_over_all``, the
  ``claims_expired`` hook), each user's every-minute ``sweep`` otherwise. One run sends for
  ``RUN_SECONDS`` at most, then queues the rest.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from integrations.models.outbox import PENDING, SENDING
from processes import queue
from processes.errors import Conflict, NotFound
from processes.progress import progress

logger = logging.getLogger(__name__)

RUN_SECONDS = 60.0  # one run sends this long at most, then queues the rest
MAX_BACKOFF = dt.timedelta(hours=1)
OUTCOMES = ("done", "retry", "dead")  # what a run counts; each user has its words for them


@dataclass
class Outcome:
    """One attempt, as recorded: ``row`` is the row re-read under its lock after the send."""

    row: Any
    attempt: Any  # what ``claimed`` returned (the user's log row), or None
    result: Any  # what ``send`` returned
    error: str  # "" when sent
    exc: Exception | None
    duration_ms: int
    finished_at: dt.datetime
    ours: bool  # False: the claim was taken over meanwhile; the row was left as it is
    status: str = "done"  # one of OUTCOMES

    @property
    def ok(self) -> bool:
        return not self.error


class Outbox:
    """One user of the mechanism. Subclass, fill in the attributes and ``send``, ``register``."""

    name: str  # in logs: "events out"
    noun: str  # one row, in messages: "delivery"
    model: type[models.Model]  # an ``OutboxRow`` with a ``status`` and a ``last_error``
    queue_fields: tuple[str, ...]  # the fields that make a queue: its key
    in_order = False  # True: only a queue's head is sent; a dead head blocks the queue
    order: tuple[str, ...] = ("pk",)  # a queue's order when ``in_order``
    ready_q = Q()  # queues that may go now (a condition on the queue, never on one row)
    done: str  # the status of a row sent
    dead: str  # the status of a row that gave up (a dead letter)
    done_field: str  # when it was sent
    kept_fields: tuple[str, ...] = ()  # more fields ``finished`` sets on the row
    error_chars = 1000
    words: dict[str, str] = {"done": "sent", "retry": "retry", "dead": "failed"}
    task: str  # the django-q2 task that runs one queue: ``task(*key)``
    group: str | None = None
    schedule: str  # the name of the every-minute schedule that sweeps, and its function
    schedule_func: str

    # --- what a user fills in ---------------------------------------------------------------

    def send(self, row) -> Any:
        """Send ``row`` (within ``send_seconds``); raise when it was not sent."""
        raise NotImplementedError

    def send_seconds(self) -> float:
        """The longest one attempt takes."""
        raise NotImplementedError

    def max_attempts(self, row) -> int:
        raise NotImplementedError

    def first_backoff(self) -> dt.timedelta:
        raise NotImplementedError

    def rows(self) -> models.QuerySet:
        """Every row, with what ``send`` and ``max_attempts`` read (``select_related``)."""
        return self.model.objects.all()

    def error(self, exc: Exception) -> str:
        """What the row and the log keep of a failed attempt."""
        return str(exc) or type(exc).__name__

    def claimed(self, row, now) -> Any:
        """Inside the claim's transaction: log the attempt (returned to ``finished``)."""
        return None

    def finished(self, outcome: Outcome) -> None:
        """Inside the outcome's transaction, before the row is saved (when ``outcome.ours``)."""

    def ran(self, key: tuple, outcomes: list[Outcome]) -> None:
        """After a run, outside any transaction: tell the world what it sent."""

    # --- the mechanism ------------------------------------------------------------------------

    def claim_seconds(self) -> float:
        """How long a claim holds: one attempt and the lease margin. An older claim is a worker
        that died in the middle: another worker takes the row over."""
        return self.send_seconds() + settings.FLOWDESK_LEASE_MARGIN

    def backoff(self, attempt: int) -> dt.timedelta:
        """The wait after failed attempt number ``attempt`` of a round (1, 2, ...)."""
        return min(self.first_backoff() * 2 ** max(attempt - 1, 0), MAX_BACKOFF)

    def _queue(self, key: tuple) -> models.QuerySet:
        return self.rows().filter(**dict(zip(self.queue_fields, key, strict=True)))

    def _due(self, now) -> Q:
        """Pending past its back-off, or claimed longer ago than a claim holds."""
        stale = now - dt.timedelta(seconds=self.claim_seconds())
        return Q(status__in=[PENDING, SENDING], next_attempt_at__lte=now) & ~Q(
            status=SENDING, claimed_at__gt=stale
        )

    def _claim(self, key: tuple, now, tried: list):
        """Under the row's lock: mark the queue's next due row ``sending`` (None: none due)."""
        with transaction.atomic():
            rows = self._queue(key).filter(self.ready_q)
            if self.in_order:
                rows = rows.exclude(status=self.done).order_by(*self.order)
                row = rows.select_for_update(of=("self",)).first()
            else:
                rows = rows.filter(self._due(now)).exclude(pk__in=tried)
                rows = rows.order_by("next_attempt_at", "pk")
                row = rows.select_for_update(of=("self",), skip_locked=True).first()
            if row is None or row.status not in (PENDING, SENDING):
                return None
            stale = now - dt.timedelta(seconds=self.claim_seconds())
            if row.status == SENDING and row.claimed_at and row.claimed_at > stale:
                return None  # another worker is sending it
            if row.next_attempt_at is not None and row.next_attempt_at > now:
                return None  # backing off (an in-order queue's later rows wait behind it)
            row.status, row.claimed_at = SENDING, now
            row.next_attempt_at = row.next_attempt_at or now  # a stale claim is due
            row.attempts += 1
            row.save(update_fields=["status", "claimed_at", "next_attempt_at", "attempts"])
            return row, self.claimed(row, now)

    def _send(self, row, attempt) -> Outcome:
        started = time.monotonic()
        result, error, exc = None, "", None
        try:
            result = self.send(row)
        except Exception as caught:
            exc, error = caught, (self.error(caught) or type(caught).__name__)[: self.error_chars]
        duration_ms = round((time.monotonic() - started) * 1000)
        now = timezone.now()
        with transaction.atomic():
            current = self.rows().select_for_update(of=("self",)).get(pk=row.pk)
            ours = current.status == SENDING and current.attempts == row.attempts
            outcome = Outcome(current, attempt, result, error, exc, duration_ms, now, ours)
            if ours:
                self._apply(outcome)
            elif not outcome.ok:
                outcome.status = "retry"
            self.finished(outcome)
            if ours:
                fields = ["status", "last_error", "next_attempt_at", self.done_field]
                current.save(update_fields=fields + list(self.kept_fields))
        if error:
            logger.warning("%s: %s %s failed: %s", self.name, self.noun, row.pk, error)
        return outcome

    def _apply(self, outcome: Outcome) -> None:
        row, now = outcome.row, outcome.finished_at
        if outcome.ok:
            row.status, row.last_error, row.next_attempt_at = self.done, "", None
            setattr(row, self.done_field, now)
            return
        row.last_error = outcome.error
        limit = self.max_attempts(row)
        if row.attempts >= limit * (row.replays + 1):
            row.status, row.next_attempt_at, outcome.status = self.dead, None, "dead"
        else:
            row.status, outcome.status = PENDING, "retry"
            row.next_attempt_at = now + self.backoff(row.attempts - limit * row.replays)

    def run(self, key: Iterable, *, now=None, until=None, limit: int = 500) -> dict:
        """Send the queue ``key``'s due rows until none is due (``in_order``: or one fails);
        ``now``: the sweep's clock. After ``RUN_SECONDS`` (or at ``until``, monotonic) the rest
        goes to a new queue task: a worker is never held longer than that."""
        key = tuple(key)
        until = time.monotonic() + RUN_SECONDS if until is None else until
        outcomes: list[Outcome] = []
        more = False
        try:
            for _ in range(limit):
                if time.monotonic() >= until:
                    more = True
                    break
                # Told before the claim: a worker killed between the claim's commit and the
                # send leaves a note, and the supervisor has the claim taken over when it ends.
                progress.busy_until(time.time() + self.claim_seconds() + 1)
                claimed = self._claim(key, now or timezone.now(), [o.row.pk for o in outcomes])
                if claimed is None:
                    break
                outcomes.append(self._send(*claimed))
                if self.in_order and outcomes[-1].status != "done":
                    break
        finally:
            progress.idle()
        if more:
            self.enqueue([key])
        if outcomes:
            self.ran(key, outcomes)
        return {self.words[name]: sum(o.status == name for o in outcomes) for name in OUTCOMES}

    def enqueue(self, keys: Iterable[tuple]) -> None:
        """Queue a run of each queue (after commit, or outside a transaction)."""
        # the q2 timeout: a run's time and one attempt that began just before its end
        options = {"timeout": int(RUN_SECONDS + self.claim_seconds()) + 1}
        if self.group:
            options["group"] = self.group
        for key in keys:
            queue.enqueue(self.task, *key, **options)

    def due_queues(self, now, limit: int) -> list[tuple]:
        """Queues with a row due (a stale claim included), behind no dead letter if in order."""
        rows = self.model.objects.filter(self._due(now), self.ready_q)
        if self.in_order:
            fields = {name: OuterRef(name) for name in self.queue_fields}
            rows = rows.filter(~Exists(self.model.objects.filter(status=self.dead, **fields)))
        keys = rows.order_by().values_list(*self.queue_fields).distinct()[:limit]
        return [_key(values) for values in keys]

    def sweep(self, *, now=None, limit: int = 1000) -> dict:
        """Run every due queue (the user's schedule runs this) for ``RUN_SECONDS`` at most, and
        within the schedule's django-q2 timeout (the cluster's): the rest waits for the next."""
        now = now or timezone.now()
        q2_timeout = float(settings.Q_CLUSTER.get("timeout") or RUN_SECONDS * 5)
        budget = min(RUN_SECONDS, q2_timeout - self.claim_seconds() - 1)
        until = time.monotonic() + max(1.0, budget)
        totals: dict[str, int] = {}
        for key in self.due_queues(now, limit):
            if time.monotonic() >= until:
                break
            try:
                outcome = self.run(key, now=now, until=until)
            except Exception:
                logger.exception("%s: queue %s", self.name, key)
                continue
            for name, count in outcome.items():
                totals[name] = totals.get(name, 0) + count
        return totals

    def take_over(self, limit: int = 1000) -> int:
        """Queue every due queue now, stale claims included. Returns how many."""
        keys = self.due_queues(timezone.now(), limit)
        if keys:
            logger.warning("%s: taking over %s %s queue(s)", self.name, len(keys), self.noun)
            self.enqueue(keys)
        return len(keys)

    def replay(self, row_id):
        """Give a dead letter another round of attempts and queue it (Conflict if not dead)."""
        with transaction.atomic():
            try:
                row = self.model.objects.select_for_update().get(pk=row_id)
            except (self.model.DoesNotExist, ValueError, TypeError):
                raise NotFound(f"{self.noun} {row_id} not found") from None
            if row.status != self.dead:
                raise Conflict(f"{self.noun} {row.pk} is {row.status}, not a dead letter")
            self._again([row])
        return row

    def send_now(self, row_ids) -> int:
        """Replay the dead letters among ``row_ids`` and end the back-off of the pending ones;
        queue them. Returns how many (rows sent or being sent are left as they are)."""
        with transaction.atomic():
            rows = self.model.objects.select_for_update().filter(pk__in=list(row_ids))
            return self._again(list(rows.filter(status__in=[PENDING, self.dead])))

    def _again(self, rows: list) -> int:
        """Inside the caller's transaction, rows locked: due now, a dead one for a new round."""
        now = timezone.now()
        for row in rows:
            row.replays += row.status == self.dead
            row.status, row.next_attempt_at = PENDING, now
            row.save(update_fields=["status", "next_attempt_at", "replays"])
        keys = sorted({_key(getattr(row, name) for name in self.queue_fields) for row in rows})
        queue.on_commit(self.enqueue, keys)  # the one guarded after-commit path
        return len(rows)

    def ensure_schedule(self):
        """The one schedule that sweeps this outbox (idempotent; an existing one is kept)."""
        return queue.ensure_periodic(self.schedule, self.schedule_func, minutes=1, fix=False)


def _key(values: Iterable) -> tuple:
    """A queue's key as a task's arguments carry it (a uuid as text)."""
    return tuple(str(v) if isinstance(v, uuid.UUID) else v for v in values)


OUTBOXES: dict[str, Outbox] = {}


def register(outbox: Outbox) -> Outbox:
    OUTBOXES[outbox.name] = outbox
    return outbox


def take_over_all() -> None:
    """The ``claims_expired`` hook: the supervisor saw a worker die mid-send and its claim has
    just expired: every outbox queues what is due now."""
    for outbox in OUTBOXES.values():
        try:
            outbox.take_over()
        except Exception:  # one outbox's trouble doesn't keep the others' claims
            logger.exception("%s: cannot take claims over; its sweep will", outbox.name)


def ensure_schedules(*, say: Callable[[str], None]) -> None:
    """The ``setup`` hook (``manage.py setup_flowdesk``): every outbox's sweep schedule."""
    for outbox in OUTBOXES.values():
        schedule = outbox.ensure_schedule()
        say(f"schedule {schedule.name}: every {schedule.minutes} min")
