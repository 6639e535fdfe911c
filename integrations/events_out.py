"""Events out: every process event delivered to its definition's subscribers, at least once.

- **Outbox in the event's transaction.** ``on_events_written`` (the ``events_written`` hook,
  called by ``processes.events.flush`` inside the engine's transaction) writes one
  ``EventDelivery`` row per event and matching subscription: an event commits with its
  deliveries or not at all. After commit it queues ``deliver_process`` (django-q2) for each
  (subscription, process) pair; the ``flowdesk.events_out`` schedule (``sweep``) picks up what a
  lost enqueue, a back-off or a dead worker left behind.
- **Order per process.** A pair's deliveries go out one at a time in event-id order: only the
  pair's first undelivered row (its head) is ever sent, so a later event waits while an earlier
  one is pending, being sent, or dead.
- **The outbox mechanism** (``integrations.outbox``, shared with the SMS alerts) does the rest:
  the head is claimed under its row lock (attempt logged: ``DeliveryAttempt``), sent outside
  any transaction and its outcome recorded under the lock again, so it is sent at least once
  and once per attempt (receivers drop repeats by ``X-Flowdesk-Event-Id``, the body's ``id``);
  back-off doubling from ``FLOWDESK_EVENTS_BACKOFF`` seconds; a dead letter after the
  subscription's ``max_attempts``, given another round by ``replay`` (admin button, API); the
  worker busy while it sends; a claim older than ``FLOWDESK_EVENTS_TIMEOUT`` (one attempt's
  whole time, 10 s at most) + ``FLOWDESK_LEASE_MARGIN`` taken over.
- **Nothing read back.** A webhook goes to public addresses only (``webhook_targets``); the log
  keeps the status code, the time and a short error class, never the receiver's answer.
- **Stream names in a namespace.** A Redis stream is ``flowdesk:events:<name>``
  (``EventSubscription.stream_key``): no name reaches the broker's keys.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import ssl

import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from integrations import outbox, webhook_targets
from integrations.models import (
    DeliveryAttempt,
    DeliveryStatus,
    EventDelivery,
    EventSubscription,
    SubscriptionKind,
)
from integrations.models.events_out import ERROR_CHARS
from processes import authority, queue
from processes.errors import Conflict, Forbidden, InvalidInput
from processes.models import ProcessDefinition, ProcessEvent, ProcessInstance

logger = logging.getLogger(__name__)

DELIVER = "integrations.events_out.deliver_process"
SCHEDULE = "flowdesk.events_out"
MAX_TIMEOUT = 10.0  # seconds: the most FLOWDESK_EVENTS_TIMEOUT may say
SIGNATURE_HEADER = "X-Flowdesk-Signature"


def delivery_timeout() -> float:
    """``FLOWDESK_EVENTS_TIMEOUT``: one attempt's whole time, in seconds (0 < t <= 10)."""
    timeout = float(getattr(settings, "FLOWDESK_EVENTS_TIMEOUT", 5))
    if not 0 < timeout <= MAX_TIMEOUT:
        raise ImproperlyConfigured("FLOWDESK_EVENTS_TIMEOUT: more than 0 and at most 10 seconds")
    return timeout


# --- who may subscribe ----------------------------------------------------------------------------

SUBSCRIPTION_PERMS = {
    "add": "integrations.add_eventsubscription",
    "change": "integrations.change_eventsubscription",
    "delete": "integrations.delete_eventsubscription",
}


def visible_keys(user):
    """Definition keys whose subscriptions and deliveries ``user`` may see (None: every key):
    those whose processes they may see (``processes.authority.SEE``)."""
    return authority.granted_keys(user, authority.SEE)


def visible(queryset, user, key_field: str = "definition_key"):
    """``queryset`` (of subscriptions, or of deliveries with ``subscription__definition_key``)
    cut to what ``user`` may see."""
    keys = visible_keys(user)
    return queryset if keys is None else queryset.filter(**{f"{key_field}__in": keys})


def may_see(user, definition_key: str) -> bool:
    return authority.has_definition_perm(user, authority.SEE, definition_key)


def definition_refusal(user, definition_key: str) -> str | None:
    """Why ``user`` may not subscribe to ``definition_key`` (None: they may). A subscription
    sends every event of the definition's processes (amounts and names included) to its
    target: it needs the right to see them. A definition that does not exist and one the person
    may not see get the same answer."""
    if may_see(user, definition_key) and (
        ProcessDefinition.objects.filter(key=definition_key).exists()
    ):
        return None
    return (
        f"no process definition {definition_key!r} among those you may see "
        "(subscribing needs the right to view its processes)"
    )


def save_subscription(*, user, subscription: EventSubscription | None, changes: dict):
    """Create (``subscription`` None) or change a subscription for ``user`` (the API; the admin
    applies the same rule: its model permissions, ``definition_refusal``, the model's ``clean``).

    Forbidden without the model permission; InvalidInput with the fields (a definition they
    may not see, a refused webhook target, a bad stream name, ...); Conflict when its name was
    taken meanwhile. ``subscription`` must be one ``user`` may see."""
    action = "add" if subscription is None else "change"
    if not user.has_perm(SUBSCRIPTION_PERMS[action]):
        raise Forbidden(f"you may not {action} event subscriptions")
    subscription = subscription or EventSubscription()
    if action == "add" or "definition_key" in changes:
        refusal = definition_refusal(user, changes.get("definition_key", ""))
        if refusal is not None:
            raise InvalidInput(refusal, fields={"definition_key": [refusal]})
    for name, value in changes.items():
        setattr(subscription, name, value)
    try:
        subscription.full_clean()
    except ValidationError as exc:
        raise InvalidInput("the subscription is not valid", fields=exc.message_dict) from None
    try:
        with transaction.atomic():
            subscription.save()
    except IntegrityError:
        raise Conflict(f"a subscription named {subscription.name!r} exists") from None
    return subscription


def delete_subscription(*, user, subscription: EventSubscription) -> None:
    """Delete a subscription ``user`` may see, with its deliveries (Forbidden without the
    model permission)."""
    if not user.has_perm(SUBSCRIPTION_PERMS["delete"]):
        raise Forbidden("you may not delete event subscriptions")
    subscription.delete()


# --- the outbox, written in the engine's transaction ---------------------------------------------


def on_events_written(*, process: ProcessInstance, events: list[ProcessEvent]) -> None:
    """Write the deliveries of ``events`` (inside the engine's transaction) and queue them."""
    subscriptions = EventSubscription.active_for(process.definition_key)
    if not subscriptions:
        return
    now = timezone.now()
    rows = [
        EventDelivery(
            subscription_id=subscription_id,
            event_id=e.pk,
            process_id=process.pk,
            event_type=e.type,
            next_attempt_at=now,
            created_at=now,
        )
        for subscription_id, event_types in subscriptions
        for e in events
        if not event_types or e.type in event_types
    ]
    if not rows:
        return
    EventDelivery.objects.bulk_create(rows)
    pairs = sorted({(r.subscription_id, str(process.pk)) for r in rows})
    queue.on_commit(EVENTS.enqueue, pairs)  # the one guarded after-commit path


def on_processes_purged(*, process_ids) -> None:
    """Retention deleted these processes: their deliveries (and log) go with them."""
    EventDelivery.objects.filter(process_id__in=process_ids).delete()


# --- delivery: the outbox mechanism (``integrations.outbox``) with events' sending ------------


class EventDeliveries(outbox.Outbox):
    """The events' outbox: a (subscription, process) pair's deliveries, in event-id order."""

    name, noun = "events out", "delivery"
    model = EventDelivery
    queue_fields = ("subscription_id", "process_id")
    in_order, order = True, ("event_id",)
    ready_q = Q(subscription__active=True)  # a paused subscription's deliveries wait
    done, dead, done_field = DeliveryStatus.DELIVERED, DeliveryStatus.DEAD, "delivered_at"
    error_chars = ERROR_CHARS
    words = {"done": "delivered", "retry": "failed", "dead": "dead"}
    task, group = DELIVER, "flowdesk-events-out"
    schedule, schedule_func = SCHEDULE, "integrations.events_out.sweep"

    def rows(self):
        return EventDelivery.objects.select_related("subscription")

    def send(self, row):
        return _send(row)

    def send_seconds(self) -> float:
        return delivery_timeout()

    def max_attempts(self, row) -> int:
        return row.subscription.max_attempts

    def first_backoff(self) -> dt.timedelta:
        return dt.timedelta(seconds=float(getattr(settings, "FLOWDESK_EVENTS_BACKOFF", 10)))

    def error(self, exc: Exception) -> str:
        if isinstance(exc, DeliveryError):
            return str(exc)
        logger.error("events out: unexpected failure", exc_info=exc)  # never the answer: a class
        return "request failed"

    def claimed(self, row, now) -> DeliveryAttempt:
        return DeliveryAttempt.objects.create(delivery=row, number=row.attempts, started_at=now)

    def finished(self, outcome: outbox.Outcome) -> None:
        attempt = outcome.attempt
        attempt.finished_at, attempt.ok = outcome.finished_at, outcome.ok
        attempt.status_code = (
            outcome.result if outcome.ok else getattr(outcome.exc, "status_code", None)
        )
        attempt.error, attempt.duration_ms = outcome.error, outcome.duration_ms
        attempt.save(update_fields=["finished_at", "ok", "status_code", "error", "duration_ms"])


EVENTS = outbox.register(EventDeliveries())


def deliver_process(
    subscription_id: int, process_id: str, *, limit: int = 500, now=None, until=None
) -> dict:
    """The django-q2 task: send the pair's deliveries in order until one fails or none is due."""
    return EVENTS.run((subscription_id, process_id), now=now, until=until, limit=limit)


def sweep(*, now=None, limit: int = 1000) -> dict:
    """Deliver every due pair (the ``flowdesk.events_out`` schedule runs this)."""
    return EVENTS.sweep(now=now, limit=limit)


def replay(delivery_id) -> EventDelivery:
    """Give a dead delivery another round of attempts and queue it (Conflict if not dead)."""
    return EVENTS.replay(delivery_id)


class DeliveryError(Exception):
    """A failed attempt; its message is a short class for the log, never the answer."""

    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


def failure(exc: Exception) -> str:
    """The short error class of a failed webhook attempt (what the delivery log says)."""
    if isinstance(exc, webhook_targets.TargetRefused):
        return f"refused target: {exc.reason}"
    if isinstance(exc, webhook_targets.Unresolvable):
        return "cannot resolve host"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    causes, seen = [], exc
    while seen is not None and len(causes) < 10:
        causes.append(seen)
        seen = seen.__cause__ or seen.__context__
    if any(isinstance(c, ConnectionRefusedError) for c in causes) or "refused" in str(exc):
        return "connection refused"
    if any(isinstance(c, ssl.SSLError) for c in causes):
        return "TLS error"
    if isinstance(exc, httpx.ConnectError):
        return "connection failed"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "protocol error"
    return "request failed"


def event_body(event: ProcessEvent, business_key: str, definition_key: str) -> dict:
    """What a subscriber receives for one event (``id`` is the idempotency key)."""
    return {
        "id": event.pk,
        "type": event.type,
        "process_id": str(event.process_id),
        "definition": definition_key,
        "business_key": business_key,
        "seq": event.seq,
        "task": event.task_name or None,
        "actor": {"type": event.actor_type, "label": event.actor_label},
        "created_at": event.created_at.isoformat(),
        "occurred_at": event.occurred_at.isoformat() if event.occurred_at else None,
        "data": event.data,
    }


def _body(delivery: EventDelivery) -> bytes:
    event = ProcessEvent.objects.select_related("process").get(pk=delivery.event_id)
    body = event_body(event, event.process.business_key, event.process.definition_key)
    return json.dumps(body, cls=DjangoJSONEncoder, separators=(",", ":")).encode()


def sign(secret: str, body: bytes) -> str:
    """The ``X-Flowdesk-Signature`` value of ``body``: ``sha256=`` and the hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str) -> bool:
    """What a receiver checks (constant-time): the header matches the body and the secret."""
    return hmac.compare_digest(sign(secret, body), signature or "")


def _send(delivery: EventDelivery) -> int | None:
    subscription = delivery.subscription
    try:
        body = _body(delivery)
    except ProcessEvent.DoesNotExist:
        raise DeliveryError(f"event {delivery.event_id} no longer exists") from None
    if subscription.kind == SubscriptionKind.REDIS_STREAM:
        return _xadd(subscription, delivery, body)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "flowdesk/1.0",
        "X-Flowdesk-Event-Id": str(delivery.event_id),
        "X-Flowdesk-Event-Type": delivery.event_type,
        "Idempotency-Key": f"event-{delivery.event_id}",
        SIGNATURE_HEADER: sign(subscription.secret, body),
    }
    try:
        status_code = webhook_targets.post(
            subscription.url, content=body, headers=headers, timeout=delivery_timeout()
        )
    except (webhook_targets.TargetRefused, webhook_targets.Unresolvable, httpx.HTTPError) as exc:
        raise DeliveryError(failure(exc)) from None
    except Exception:  # (an invalid URL httpx refuses, a bug): a failed attempt all the same
        logger.exception("webhook %s: the request could not be made", subscription.name)
        raise DeliveryError("request failed") from None
    if not 200 <= status_code < 300:
        raise DeliveryError(f"HTTP {status_code}", status_code)
    return status_code


_redis_clients: dict[tuple, object] = {}


def _redis(url: str):
    import redis

    timeout = delivery_timeout()
    client = _redis_clients.get((url, timeout))
    if client is None:
        client = _redis_clients[(url, timeout)] = redis.from_url(
            url, socket_connect_timeout=min(3.0, timeout), socket_timeout=timeout
        )
    return client


def _xadd(subscription: EventSubscription, delivery: EventDelivery, body: bytes) -> None:
    url = settings.FLOWDESK_EVENTS_REDIS_URL
    if not url:
        raise DeliveryError("FLOWDESK_EVENTS_REDIS_URL is not set")
    fields = {
        "event_id": str(delivery.event_id),
        "type": delivery.event_type,
        "process_id": str(delivery.process_id),
        "body": body,
    }
    try:
        key = subscription.stream_key  # flowdesk:events:<name>, never another key
    except ValueError:
        raise DeliveryError("invalid stream name") from None
    import redis

    try:
        _redis(url).xadd(
            key, fields, maxlen=settings.FLOWDESK_EVENTS_STREAM_MAXLEN, approximate=True
        )
    except redis.TimeoutError:
        raise DeliveryError("Redis XADD failed: timeout") from None
    except redis.ConnectionError:
        raise DeliveryError("Redis XADD failed: unreachable") from None
    except Exception as exc:
        raise DeliveryError(f"Redis XADD failed: {type(exc).__name__}") from None
    return None


def ensure_schedule():
    """The one schedule that delivers what is due (idempotent; an existing one is kept)."""
    return EVENTS.ensure_schedule()
