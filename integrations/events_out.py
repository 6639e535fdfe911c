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
- **At least once, once per attempt.** The head is claimed (``sending``, attempt logged) in a
  short transaction holding its row lock, sent outside any transaction, and its outcome recorded
  under the lock again; a replay or a second worker that finds the row claimed does nothing.
  Receivers drop repeats by the event id (``X-Flowdesk-Event-Id``, the body's ``id``).
- **Dead letters.** After ``max_attempts`` failures (back-off doubling from
  ``FLOWDESK_EVENTS_BACKOFF`` seconds, capped at an hour) a delivery is ``dead``; ``replay``
  (admin button, API) gives it another round of attempts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
from collections.abc import Iterable

import httpx
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from integrations.models import (
    DeliveryAttempt,
    DeliveryStatus,
    EventDelivery,
    EventSubscription,
    SubscriptionKind,
)
from processes import queue
from processes.errors import Conflict, NotFound
from processes.models import ProcessEvent, ProcessInstance

logger = logging.getLogger(__name__)

DELIVER = "integrations.events_out.deliver_process"
SCHEDULE = "flowdesk.events_out"
STALE_CLAIM = dt.timedelta(minutes=5)  # a claim older than this is a worker that died mid-send
MAX_BACKOFF = dt.timedelta(hours=1)
SIGNATURE_HEADER = "X-Flowdesk-Signature"
ERROR_CHARS = 1000


# --- the outbox, written in the engine's transaction ---------------------------------------------


def on_events_written(*, process: ProcessInstance, events: list[ProcessEvent]) -> None:
    """Write the deliveries of ``events`` (inside the engine's transaction) and queue them."""
    subscriptions = [
        s
        for s in EventSubscription.objects.filter(
            definition_key=process.definition_key, active=True
        ).only("pk", "event_types")
    ]
    if not subscriptions:
        return
    now = timezone.now()
    rows = [
        EventDelivery(
            subscription_id=s.pk,
            event_id=e.pk,
            process_id=process.pk,
            event_type=e.type,
            next_attempt_at=now,
            created_at=now,
        )
        for s in subscriptions
        for e in events
        if not s.event_types or e.type in s.event_types
    ]
    if not rows:
        return
    EventDelivery.objects.bulk_create(rows)
    pairs = sorted({(r.subscription_id, str(process.pk)) for r in rows})
    transaction.on_commit(lambda: enqueue(pairs))


def enqueue(pairs: Iterable[tuple[int, str]]) -> None:
    for subscription_id, process_id in pairs:
        queue.enqueue(
            DELIVER, subscription_id, process_id, group="flowdesk-events-out", timeout=120
        )


# --- delivery -------------------------------------------------------------------------------------


def deliver_process(subscription_id: int, process_id: str, *, limit: int = 500, now=None) -> dict:
    """The django-q2 task: send the pair's deliveries in order until one fails or none is due
    (``now``: the sweep's clock)."""
    outcome = {"delivered": 0, "failed": 0, "dead": 0}
    for _ in range(limit):
        claimed = _claim_head(subscription_id, process_id, now=now)
        if claimed is None:
            break
        delivery, attempt = claimed
        status = _send_and_record(delivery, attempt)
        outcome[status] += 1
        if status != "delivered":
            break
    return outcome


def _claim_head(subscription_id, process_id, *, now=None):
    """Under the head row's lock: mark it ``sending`` and log the attempt (None: nothing due)."""
    now = now or timezone.now()
    with transaction.atomic():
        head = (
            EventDelivery.objects.select_for_update(of=("self",))
            .select_related("subscription")
            .filter(subscription_id=subscription_id, process_id=process_id)
            .exclude(status=DeliveryStatus.DELIVERED)
            .order_by("event_id")
            .first()
        )
        if head is None or head.status == DeliveryStatus.DEAD or not head.subscription.active:
            return None
        if head.status == DeliveryStatus.SENDING and head.claimed_at > now - STALE_CLAIM:
            return None  # another worker is sending it
        if head.next_attempt_at is not None and head.next_attempt_at > now:
            return None  # backing off; the later events wait behind it
        head.status = DeliveryStatus.SENDING
        head.claimed_at = now
        head.attempts += 1
        head.save(update_fields=["status", "claimed_at", "attempts"])
        attempt = DeliveryAttempt.objects.create(
            delivery=head, number=head.attempts, started_at=now
        )
    return head, attempt


def _send_and_record(delivery: EventDelivery, attempt: DeliveryAttempt) -> str:
    try:
        status_code = _send(delivery)
        error = ""
    except DeliveryError as exc:
        status_code, error = exc.status_code, str(exc)[:ERROR_CHARS] or type(exc).__name__
    now = timezone.now()
    with transaction.atomic():
        row = EventDelivery.objects.select_for_update().select_related("subscription")
        row = row.get(pk=delivery.pk)
        attempt.finished_at, attempt.ok = now, not error
        attempt.status_code, attempt.error = status_code, error
        attempt.save(update_fields=["finished_at", "ok", "status_code", "error"])
        if row.status != DeliveryStatus.SENDING or row.attempts != attempt.number:
            return "delivered" if not error else "failed"  # a newer claim owns the row now
        if not error:
            row.status, row.delivered_at, row.last_error = DeliveryStatus.DELIVERED, now, ""
            row.next_attempt_at = None
        else:
            row.last_error = error
            if row.attempts >= row.subscription.max_attempts * (row.replays + 1):
                row.status, row.next_attempt_at = DeliveryStatus.DEAD, None
            else:
                row.status = DeliveryStatus.PENDING
                row.next_attempt_at = now + backoff(
                    row.attempts - row.subscription.max_attempts * row.replays
                )
        row.save(update_fields=["status", "delivered_at", "last_error", "next_attempt_at"])
    if error:
        logger.warning(
            "delivery of event %s to %s failed: %s", row.event_id, row.subscription, error
        )
        return "dead" if row.status == DeliveryStatus.DEAD else "failed"
    return "delivered"


def backoff(attempt: int) -> dt.timedelta:
    """The wait after failed attempt number ``attempt`` (1, 2, ...): doubling, capped."""
    base = dt.timedelta(seconds=float(getattr(settings, "FLOWDESK_EVENTS_BACKOFF", 10)))
    return min(base * 2 ** max(attempt - 1, 0), MAX_BACKOFF)


class DeliveryError(Exception):
    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


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
    timeout = httpx.Timeout(
        settings.FLOWDESK_HTTP_READ_TIMEOUT, connect=settings.FLOWDESK_HTTP_CONNECT_TIMEOUT
    )
    try:
        response = httpx.post(subscription.url, content=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
    if not 200 <= response.status_code < 300:
        raise DeliveryError(
            f"HTTP {response.status_code}: {response.text[:200]}", response.status_code
        )
    return response.status_code


_redis_clients: dict[str, object] = {}


def _redis(url: str):
    import redis

    client = _redis_clients.get(url)
    if client is None:
        client = _redis_clients[url] = redis.from_url(url, socket_connect_timeout=3)
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
        _redis(url).xadd(
            subscription.stream,
            fields,
            maxlen=settings.FLOWDESK_EVENTS_STREAM_MAXLEN,
            approximate=True,
        )
    except Exception as exc:
        raise DeliveryError(f"Redis XADD failed: {exc}") from None
    return None


# --- the sweep and the replay ---------------------------------------------------------------------


def sweep(*, now=None, limit: int = 1000) -> dict:
    """Deliver every due pair (the ``flowdesk.events_out`` schedule runs this)."""
    now = now or timezone.now()
    dead_before = EventDelivery.objects.filter(
        subscription_id=OuterRef("subscription_id"),
        process_id=OuterRef("process_id"),
        status=DeliveryStatus.DEAD,
    )
    due = (
        EventDelivery.objects.filter(
            status__in=[DeliveryStatus.PENDING, DeliveryStatus.SENDING],
            next_attempt_at__lte=now,
            subscription__active=True,
        )
        .exclude(status=DeliveryStatus.SENDING, claimed_at__gt=now - STALE_CLAIM)
        .filter(~Exists(dead_before))
        .values_list("subscription_id", "process_id")
        .distinct()[:limit]
    )
    totals = {"delivered": 0, "failed": 0, "dead": 0}
    for subscription_id, process_id in list(due):
        try:
            outcome = deliver_process(subscription_id, str(process_id), now=now)
        except Exception:
            logger.exception("events out: subscription %s process %s", subscription_id, process_id)
            continue
        for name, count in outcome.items():
            totals[name] += count
    return totals


def replay(delivery_id) -> EventDelivery:
    """Give a dead delivery another round of attempts and queue it (Conflict if not dead)."""
    with transaction.atomic():
        try:
            row = EventDelivery.objects.select_for_update().get(pk=delivery_id)
        except (EventDelivery.DoesNotExist, ValueError, TypeError):
            raise NotFound(f"delivery {delivery_id} not found") from None
        if row.status != DeliveryStatus.DEAD:
            raise Conflict(f"delivery {row.pk} is {row.status}, not a dead letter")
        row.status, row.next_attempt_at = DeliveryStatus.PENDING, timezone.now()
        row.replays += 1
        row.save(update_fields=["status", "next_attempt_at", "replays"])
        pair = [(row.subscription_id, str(row.process_id))]
        transaction.on_commit(lambda: enqueue(pair))
    return row


def ensure_schedule():
    """The one schedule that delivers what is due (idempotent; an existing one is kept)."""
    return queue.ensure_periodic(SCHEDULE, "integrations.events_out.sweep", minutes=1, fix=False)
