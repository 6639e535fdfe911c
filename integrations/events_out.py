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
- **Bounded, and busy like a step.** One attempt takes at most ``FLOWDESK_EVENTS_TIMEOUT``
  seconds (10 at most), whatever the receiver does; meanwhile the worker's progress note says it
  is busy (``processes.progress``), so a heartbeat waiting behind slow receivers is not a stall.
  A claim older than the timeout + ``FLOWDESK_LEASE_MARGIN`` is a worker that died mid-send:
  the supervisor has it taken over then (``take_over``, the ``claims_expired`` hook), the
  minute's sweep otherwise. One task delivers for ``RUN_SECONDS`` at most, then queues the rest.
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
import time
from collections.abc import Iterable

import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from integrations import webhook_targets
from integrations.models import (
    DeliveryAttempt,
    DeliveryStatus,
    EventDelivery,
    EventSubscription,
    SubscriptionKind,
)
from integrations.models.events_out import ERROR_CHARS
from processes import authority, queue
from processes.errors import Conflict, Forbidden, InvalidInput, NotFound
from processes.models import ProcessDefinition, ProcessEvent, ProcessInstance
from processes.progress import progress

logger = logging.getLogger(__name__)

DELIVER = "integrations.events_out.deliver_process"
SCHEDULE = "flowdesk.events_out"
MAX_BACKOFF = dt.timedelta(hours=1)
MAX_TIMEOUT = 10.0  # seconds: the most FLOWDESK_EVENTS_TIMEOUT may say
RUN_SECONDS = 60.0  # one queue task delivers this long at most, then queues the rest
SIGNATURE_HEADER = "X-Flowdesk-Signature"


def delivery_timeout() -> float:
    """``FLOWDESK_EVENTS_TIMEOUT``: one attempt's whole time, in seconds (0 < t <= 10)."""
    timeout = float(getattr(settings, "FLOWDESK_EVENTS_TIMEOUT", 5))
    if not 0 < timeout <= MAX_TIMEOUT:
        raise ImproperlyConfigured("FLOWDESK_EVENTS_TIMEOUT: more than 0 and at most 10 seconds")
    return timeout


def claim_seconds() -> float:
    """How long a claim (``sending``) holds: an attempt's time and the lease margin. An older
    claim is a worker that died in the middle: another worker takes the delivery over."""
    return delivery_timeout() + settings.FLOWDESK_LEASE_MARGIN


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
    transaction.on_commit(lambda: enqueue(pairs))


def on_processes_purged(*, process_ids) -> None:
    """Retention deleted these processes: their deliveries (and log) go with them."""
    EventDelivery.objects.filter(process_id__in=process_ids).delete()


def enqueue(pairs: Iterable[tuple[int, str]]) -> None:
    # the q2 timeout: the task's delivery time and one attempt that began just before its end
    timeout = int(RUN_SECONDS + claim_seconds()) + 1
    for subscription_id, process_id in pairs:
        queue.enqueue(
            DELIVER, subscription_id, process_id, group="flowdesk-events-out", timeout=timeout
        )


# --- delivery -------------------------------------------------------------------------------------


def deliver_process(
    subscription_id: int, process_id: str, *, limit: int = 500, now=None, until=None
) -> dict:
    """The django-q2 task: send the pair's deliveries in order until one fails or none is due
    (``now``: the sweep's clock). After ``RUN_SECONDS`` (or at ``until``, monotonic) the rest
    goes to a new queue task: a worker is never held longer than that."""
    outcome = {"delivered": 0, "failed": 0, "dead": 0}
    until = time.monotonic() + RUN_SECONDS if until is None else until
    more = False
    try:
        for _ in range(limit):
            if time.monotonic() >= until:
                more = True
                break
            # Told before the claim: a worker killed between the claim's commit and the send
            # leaves a note, and the supervisor has the claim taken over when it expires.
            progress.busy_until(time.time() + claim_seconds() + 1)
            claimed = _claim_head(subscription_id, process_id, now=now)
            if claimed is None:
                break
            delivery, attempt = claimed
            status = _send_and_record(delivery, attempt)
            outcome[status] += 1
            if status != "delivered":
                break
    finally:
        progress.idle()
    if more:
        enqueue([(subscription_id, process_id)])
    return outcome


def stale_after() -> dt.timedelta:
    return dt.timedelta(seconds=claim_seconds())


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
        if head.status == DeliveryStatus.SENDING and head.claimed_at > now - stale_after():
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
    started = time.monotonic()
    try:
        status_code = _send(delivery)
        error = ""
    except DeliveryError as exc:
        status_code, error = exc.status_code, str(exc)[:ERROR_CHARS] or type(exc).__name__
    duration_ms = round((time.monotonic() - started) * 1000)
    now = timezone.now()
    with transaction.atomic():
        row = EventDelivery.objects.select_for_update().select_related("subscription")
        row = row.get(pk=delivery.pk)
        attempt.finished_at, attempt.ok = now, not error
        attempt.status_code, attempt.error = status_code, error
        attempt.duration_ms = duration_ms
        attempt.save(update_fields=["finished_at", "ok", "status_code", "error", "duration_ms"])
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


# --- the sweep and the replay ---------------------------------------------------------------------


def due_pairs(now, limit: int) -> list[tuple[int, str]]:
    """(subscription, process) pairs with a delivery due: pending past its back-off, or claimed
    longer ago than a claim holds (its worker died), behind no dead letter."""
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
        .exclude(status=DeliveryStatus.SENDING, claimed_at__gt=now - stale_after())
        .filter(~Exists(dead_before))
        .order_by()  # DISTINCT over the pair only, not the model's ordering too
        .values_list("subscription_id", "process_id")
        .distinct()[:limit]
    )
    return [(subscription_id, str(process_id)) for subscription_id, process_id in due]


def sweep(*, now=None, limit: int = 1000) -> dict:
    """Deliver every due pair (the ``flowdesk.events_out`` schedule runs this), for
    ``RUN_SECONDS`` at most (and within the schedule's django-q2 timeout, the cluster's): what
    is left waits for the next sweep."""
    now = now or timezone.now()
    q2_timeout = float(settings.Q_CLUSTER.get("timeout") or RUN_SECONDS * 5)
    until = time.monotonic() + max(1.0, min(RUN_SECONDS, q2_timeout - claim_seconds() - 1))
    totals = {"delivered": 0, "failed": 0, "dead": 0}
    for subscription_id, process_id in due_pairs(now, limit):
        if time.monotonic() >= until:
            break
        try:
            outcome = deliver_process(subscription_id, process_id, now=now, until=until)
        except Exception:
            logger.exception("events out: subscription %s process %s", subscription_id, process_id)
            continue
        for name, count in outcome.items():
            totals[name] += count
    return totals


def take_over(limit: int = 1000) -> int:
    """Queue every due pair now, stale claims included (the ``claims_expired`` hook: the
    supervisor saw a worker die mid-delivery and its claim has just expired). Returns how many."""
    pairs = due_pairs(timezone.now(), limit)
    if pairs:
        logger.warning("events out: taking over %s delivery queue(s)", len(pairs))
        enqueue(pairs)
    return len(pairs)


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
