"""SMS alerts to the on-call admins: exactly one SMS per incident and recipient.

The engine calls ``incident_opened`` after commit when a task fails for good. An incident is one
failure of one task execution (the ``process_failed`` event it opened): the same incident alerted
again sends nothing; a task retried by an admin that fails again later is a new incident.
Each SMS is a row of the outbox (``SmsMessage``), unique per incident and phone, sent by the
outbox mechanism (``integrations.outbox``, shared with events out: ``SMS``): claimed before each
attempt, retried with back-off by the ``flowdesk.sms_outbox`` schedule, failed for good after
``MAX_ATTEMPTS`` (an admin may replay it), the worker busy while it sends, and a claim older than
the backend's ``timeout`` + ``FLOWDESK_LEASE_MARGIN`` taken over; it never breaks the process.
A recipient gets at most ``FLOWDESK_SMS_RATE_LIMIT`` SMS per ``FLOWDESK_SMS_RATE_WINDOW``
seconds; the others are held back (``rate_limited``) and folded into one digest SMS per
recipient ("12 more incidents since 10:04: …") as soon as the window allows: nothing is silently
dropped. Every SMS sent or not is in the process history (``notification_sent`` /
``notification_failed``).

The worker supervisor (``manage.py workers``) announces ``cluster_stalled`` when its cluster's
heartbeat stops and ``cluster_resumed`` when it comes back (``processes.hooks``): one SMS each
per stall, through the same outbox and rate limit, as incidents without a process (logged
instead of recorded).
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from integrations import outbox, sms
from integrations.alert_texts import compose_digest, compose_message, process_link  # noqa: F401
from integrations.models import AlertRecipient, Incident, SmsMessage, SmsStatus

logger = logging.getLogger(__name__)

CHANNEL = "sms"
MAX_ATTEMPTS = 5
RETRY_BACKOFF = dt.timedelta(seconds=30)  # doubled after each failed attempt
OUTBOX_SCHEDULE = "flowdesk.sms_outbox"


def _actor():
    from processes.events import Actor

    return Actor.system("sms alerts")


def incident_alert(*, process_id, task_id, error: str, kind: str | None = None) -> Incident | None:
    """Write the SMS alert of a task that failed for good into the outbox (None: alerted before,
    or nobody on call). Delivery is ``deliver``'s. ``kind``: an incident that is not a failure
    of the task (a process deadline), keyed by it."""
    logger.error("incident: process %s task %s failed: %s", process_id, task_id, error)
    return open_incident(process_id=process_id, task_id=task_id, error=error, kind=kind)


def overdue_alert(*, process_id, task_id, due_at) -> Incident | None:
    """Write the SMS alert of a task stuck past its due time into the outbox (one per task
    execution and due time)."""
    return open_incident(
        process_id=process_id,
        task_id=task_id,
        error=f"overdue since {due_at:%Y-%m-%d %H:%M} UTC",
        kind=f"overdue:{due_at.isoformat()}",
    )


def incident_opened(*, process_id, task_id, error: str) -> None:
    """Alert the on-call admins now that a task failed for good."""
    incident = incident_alert(process_id=process_id, task_id=task_id, error=error)
    if incident is not None:
        deliver(incident.pk)


def task_overdue(*, process_id, task_id, due_at) -> None:
    """Alert now that a task is stuck past its due time."""
    incident = overdue_alert(process_id=process_id, task_id=task_id, due_at=due_at)
    if incident is not None:
        deliver(incident.pk)


def cluster_stalled(*, supervisor: str, cluster: str, since, silent_for: float, restarts: int):
    """Alert that a worker cluster stopped working (called by ``manage.py workers``).

    One SMS per stall: the incident is keyed by the supervisor and the moment the stall began.
    """
    _cluster_alert(
        f"cluster:{cluster}:{supervisor}:{since.isoformat()}:stalled",
        "[Flowdesk] "
        + gettext(
            "Workers stalled: cluster %(cluster)s on %(supervisor)s, no heartbeat for "
            "%(seconds)ss; restarting it (restart %(restarts)s)."
        )
        % {
            "cluster": cluster,
            "supervisor": supervisor,
            "seconds": f"{silent_for:.0f}",
            "restarts": restarts,
        }
        + f" {_health_link()}",
        error=f"no heartbeat for {silent_for:.0f}s",
    )


def cluster_resumed(*, supervisor: str, cluster: str, since, stalled_for: float, restarts: int):
    """Alert that a stalled worker cluster works again (its heartbeat came back)."""
    _cluster_alert(
        f"cluster:{cluster}:{supervisor}:{since.isoformat()}:resumed",
        "[Flowdesk] "
        + gettext(
            "Workers resumed: cluster %(cluster)s on %(supervisor)s works again after "
            "%(seconds)ss (restarts so far: %(restarts)s)."
        )
        % {
            "cluster": cluster,
            "supervisor": supervisor,
            "seconds": f"{stalled_for:.0f}",
            "restarts": restarts,
        }
        + f" {_health_link()}",
        error="",
    )


def watchdog_down(*, name: str, since, reasons: list[str]) -> None:
    """Alert that the installation stopped doing its work (``manage.py watchdog``): one SMS per
    outage, keyed by the moment it began."""
    _cluster_alert(
        f"watchdog:{name}:{since.isoformat()}:down",
        "[Flowdesk] "
        + gettext("Not working since %(since)s: %(reasons)s.")
        % {"since": f"{timezone.localtime(since):%H:%M}", "reasons": "; ".join(reasons)}
        + f" {_health_link()}",
        error="; ".join(reasons),
    )


def watchdog_recovered(*, name: str, since, down_for: float) -> None:
    """Alert that the outage ``since`` is over (workers and timers run again)."""
    _cluster_alert(
        f"watchdog:{name}:{since.isoformat()}:recovered",
        "[Flowdesk] "
        + gettext("Working again after %(duration)s (down since %(since)s).")
        % {"duration": _duration(down_for), "since": f"{timezone.localtime(since):%H:%M}"}
        + f" {_health_link()}",
        error="",
    )


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _cluster_alert(key: str, body: str, *, error: str) -> None:
    try:
        incident = _open(key[:200], body, process_id=None, task_name="", error=error)
        if incident is not None:
            deliver(incident.pk)
    except Exception:  # an alert that can't be sent never stops the supervisor
        logger.exception("SMS alert %s failed", key)


def _health_link() -> str:
    return settings.FLOWDESK_BASE_URL.rstrip("/") + "/healthz"


def incident_key(process_id, task, kind: str | None = None) -> str:
    """process:task:execution:<seq of the process_failed event> (or the kind of alert)."""
    from processes.models import EventType, ProcessEvent

    if kind is None:
        seq = (
            ProcessEvent.objects.filter(
                process_id=process_id, task_id=task.pk, type=EventType.PROCESS_FAILED
            )
            .order_by("-seq")
            .values_list("seq", flat=True)
            .first()
        )
        kind = f"failed:{seq or 0}"
    return f"{process_id}:{task.name}:{task.execution}:{kind}"[:200]


def open_incident(*, process_id, task_id, error: str, kind: str | None = None) -> Incident | None:
    """Create the incident and its outbox rows; None when this incident was alerted already."""
    from processes.models import ProcessInstance, TaskInstance

    process = ProcessInstance.objects.filter(pk=process_id).first()
    task = TaskInstance.objects.filter(pk=task_id).first()
    if process is None or task is None:
        logger.warning("incident on unknown process %s / task %s: no SMS", process_id, task_id)
        return None
    key = incident_key(process.pk, task, kind)
    body = compose_message(process, task, error, overdue=(kind or "").startswith("overdue:"))
    return _open(
        key,
        body,
        process_id=process.pk,
        task_id=task.pk,
        task_name=task.name,
        execution=task.execution,
        error=error or "",
    )


def _open(key: str, body: str, **fields) -> Incident | None:
    """Create incident ``key`` and one outbox row per on-call admin (rate limit applied).

    None when this incident exists already: an incident is alerted once.
    """
    now = timezone.now()
    with transaction.atomic():
        incident, created = Incident.objects.get_or_create(
            key=key, defaults={**fields, "message": body}
        )
        if not created:
            logger.info("incident %s already alerted: no second SMS", key)
            return None
        # Lock the recipients so two incidents at once can't both slip under the rate limit.
        recipients = list(
            AlertRecipient.objects.on_call().select_for_update(of=("self",)).order_by("pk")
        )
        if not recipients:
            incident.note = "no alert recipients: add an admin's phone under Integrations"
            incident.save(update_fields=["note"])
            logger.warning("incident %s: no alert recipients configured", key)
            return incident
        limit, window = settings.FLOWDESK_SMS_RATE_LIMIT, settings.FLOWDESK_SMS_RATE_WINDOW
        for recipient in recipients:
            recent = _recent(recipient.phone, now)
            limited = recent >= limit
            SmsMessage.objects.create(
                incident=incident,
                phone=recipient.phone,
                body=body,
                status=SmsStatus.RATE_LIMITED if limited else SmsStatus.PENDING,
                last_error=f"rate limit: {recent} SMS in the last {window}s" if limited else "",
                next_attempt_at=None if limited else now,
                created_at=now,
            )
    limited = list(incident.messages.filter(status=SmsStatus.RATE_LIMITED))
    if limited:
        _record(
            incident,
            recipients=[m.phone for m in limited],
            error=f"held back: rate limit of {limit} SMS per {window}s reached; "
            "it goes out in a digest SMS when the window allows",
        )
        ensure_outbox_schedule()  # the schedule that sends the digest
    return incident


def _recent(phone: str, now) -> int:
    """SMS sent or on their way to ``phone`` within the rate window (what the limit counts)."""
    return SmsMessage.objects.filter(
        phone=phone,
        created_at__gte=now - dt.timedelta(seconds=settings.FLOWDESK_SMS_RATE_WINDOW),
        status__in=[SmsStatus.PENDING, SmsStatus.SENDING, SmsStatus.SENT],
    ).count()


def send_digests(*, now=None) -> int:
    """Fold each recipient's held-back alerts into one digest SMS once the rate window has room.

    Runs in the ``flowdesk.sms_outbox`` schedule (and ``manage.py watchdog``); returns the number
    of digests written. The digest takes one slot of the limit like any SMS.
    """
    now = now or timezone.now()
    held = SmsMessage.objects.filter(status=SmsStatus.RATE_LIMITED)
    written = []
    for phone in list(held.values_list("phone", flat=True).distinct()):
        with transaction.atomic():
            # The same lock as ``_open``: an incident at this moment can't take the same slot.
            list(AlertRecipient.objects.filter(phone=phone).select_for_update(of=("self",)))
            if _recent(phone, now) >= settings.FLOWDESK_SMS_RATE_LIMIT:
                continue
            waiting = list(
                held.filter(phone=phone)
                .select_related("incident")
                .select_for_update(of=("self",), skip_locked=True)
                .order_by("created_at", "pk")
            )
            if not waiting:
                continue
            body = compose_digest(waiting)
            digest = Incident.objects.create(
                key=f"digest:{phone}:{waiting[0].pk}"[:200],
                message=body,
                error=f"{len(waiting)} alerts held back by the rate limit",
            )
            sms = SmsMessage.objects.create(
                incident=digest,
                phone=phone,
                body=body,
                status=SmsStatus.PENDING,
                next_attempt_at=now,
                created_at=now,
            )
            SmsMessage.objects.filter(pk__in=[m.pk for m in waiting]).update(
                status=SmsStatus.FOLDED, folded_into=sms, next_attempt_at=None
            )
            written.append((digest, waiting))
    for digest, waiting in written:
        try:
            deliver(digest.pk, now=now)
        except Exception:  # the outbox retries it
            logger.exception("digest SMS %s", digest.key)
        for message in waiting:
            _record(
                message.incident,
                recipients=[message.phone],
                message=f"in a digest SMS: {digest.message}",
            )
    return len(written)


class SmsAlerts(outbox.Outbox):
    """The SMS outbox: an incident's SMS, one per on-call admin, sent in any order."""

    name, noun = "SMS alerts", "SMS"
    model = SmsMessage
    queue_fields = ("incident_id",)
    done, dead, done_field = SmsStatus.SENT, SmsStatus.FAILED, "sent_at"
    kept_fields = ("provider_id",)
    task = "integrations.listeners.deliver_alert"
    schedule, schedule_func = OUTBOX_SCHEDULE, "integrations.alerts.retry_pending"

    def send(self, row) -> str:
        return str(sms.get_backend().send(row.phone, row.body) or "")[:100]

    def send_seconds(self) -> float:
        return sms.send_timeout()

    def max_attempts(self, row) -> int:
        return MAX_ATTEMPTS

    def first_backoff(self) -> dt.timedelta:
        return RETRY_BACKOFF

    def finished(self, outcome: outbox.Outcome) -> None:
        if outcome.ours and outcome.ok:
            outcome.row.provider_id = outcome.result

    def ran(self, key: tuple, outcomes: list[outbox.Outcome]) -> None:
        """Write what was sent, and what was not, into the incident's process history."""
        incident = Incident.objects.get(pk=key[0])
        ours = [o for o in outcomes if o.ours]
        sent = [o.row.phone for o in ours if o.status == "done"]
        if sent:
            _record(incident, recipients=sent, message=incident.message)
        for o in (o for o in ours if o.status == "retry"):
            when = f"{o.row.next_attempt_at:%H:%M:%S}"
            error = f"attempt {o.row.attempts} failed, retry at {when}: {o.error}"
            _record(incident, recipients=[o.row.phone], error=error)
        for o in (o for o in ours if o.status == "dead"):
            error = f"gave up after {o.row.attempts} attempts: {o.error}"
            _record(incident, recipients=[o.row.phone], error=error)
        if any(o.status == "retry" for o in ours):
            self.ensure_schedule()


SMS = outbox.register(SmsAlerts())


def deliver(incident_id, *, now=None) -> dict[str, int]:
    """Send the incident's due SMS (each claimed first, so it is sent once per attempt)."""
    return SMS.run((incident_id,), now=now)


def _record(incident: Incident, *, recipients, message: str = "", error: str | None = None):
    from processes import engine
    from processes.errors import EngineError

    if incident.process_id is None:  # a cluster alert: no process history to write to
        logger.info("SMS of %s: %s", incident.key, error or f"sent to {', '.join(recipients)}")
        return
    try:
        engine.notification_record(
            process_id=incident.process_id,
            task_id=incident.task_id,
            actor=_actor(),
            channel=CHANNEL,
            recipients=recipients,
            message=message,
            error=error,
        )
    except EngineError as exc:
        logger.warning("cannot record SMS of incident %s: %s", incident.key, exc)


def retry_pending(*, now=None) -> dict[str, int]:
    """Send every SMS that is due (a stale claim included), then the digests of held-back
    alerts the rate window has room for (the ``flowdesk.sms_outbox`` schedule runs this)."""
    now = now or timezone.now()
    totals = SMS.sweep(now=now)
    digests = send_digests(now=now)
    if digests:
        totals["digests"] = digests
    return totals


def ensure_outbox_schedule():
    """Create the one schedule that retries unsent SMS (idempotent; an existing one is kept)."""
    return SMS.ensure_schedule()
