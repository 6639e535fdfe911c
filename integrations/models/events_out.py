"""Events out: subscriptions, the delivery outbox and its log; and the watchdog's state."""

from __future__ import annotations

import re
import time

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from integrations.models.outbox import OutboxRow


def new_secret() -> str:
    import secrets

    return secrets.token_hex(32)


_active_cache: dict[str, tuple[float, list]] = {}  # EventSubscription.active_for, per process

# Redis streams live under a prefix of their own: no name reaches another key (django-q2's
# queues are ``django_q:...``). A name is one segment: letters, digits, ``.``, ``_``, ``-``.
STREAM_PREFIX = "flowdesk:events:"
STREAM_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")
STREAM_NAME_HELP = (
    "Redis stream: events are XADDed to flowdesk:events:<this name>. Letters, digits, '.', '_' "
    "and '-' (up to 100, starting with a letter or digit)."
)
ERROR_CHARS = 100  # a delivery's error is a short class ("timeout", "HTTP 500"), never an answer


class SubscriptionKind(models.TextChoices):
    WEBHOOK = "webhook", "Webhook (HTTP POST, HMAC-SHA256 signed)"
    REDIS_STREAM = "redis_stream", "Redis stream (XADD)"


class EventSubscription(models.Model):
    """Who gets the process events of one definition: a webhook URL or a Redis stream.

    Every event of a matching process gets one ``EventDelivery`` row, written in the engine's
    transaction (``integrations.events_out``)."""

    name = models.CharField(max_length=100, unique=True)
    definition_key = models.SlugField(
        max_length=100, help_text="The process definition whose events are delivered."
    )
    kind = models.CharField(
        max_length=20, choices=SubscriptionKind.choices, default=SubscriptionKind.WEBHOOK
    )
    url = models.URLField(max_length=500, blank=True, default="", help_text="Webhook: POST here.")
    secret = models.CharField(
        max_length=200,
        default=new_secret,
        help_text="Webhook: the HMAC-SHA256 key of the X-Flowdesk-Signature header.",
    )
    stream = models.CharField(
        max_length=100,
        blank=True,
        default="",
        help_text=STREAM_NAME_HELP,
        validators=[RegexValidator(STREAM_NAME_RE, STREAM_NAME_HELP)],
    )
    event_types = models.JSONField(
        default=list, blank=True, help_text="Event types to deliver (empty: every event)."
    )
    max_attempts = models.PositiveIntegerField(
        default=8, help_text="Attempts before a delivery goes to the dead letters."
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["definition_key", "name"]
        indexes = [models.Index(fields=["definition_key", "active"], name="subscription_def")]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind} of {self.definition_key})"

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        _active_cache.clear()

    def delete(self, *args, **kwargs):
        result = super().delete(*args, **kwargs)
        _active_cache.clear()
        return result

    @classmethod
    def active_for(cls, definition_key: str) -> list[tuple[int, list]]:
        """``(id, event_types)`` of the active subscriptions of ``definition_key``.

        Read on every engine transaction, so kept in memory for
        ``FLOWDESK_EVENTS_SUBSCRIPTIONS_TTL`` seconds (5): without it, every engine event paid
        one more query (two per service step) even with no subscription at all. A change made
        in this process applies at once; in the others within the TTL.
        """
        now = time.monotonic()
        hit = _active_cache.get(definition_key)
        if hit is not None and hit[0] > now:
            return hit[1]
        found = [
            (s.pk, list(s.event_types or []))
            for s in cls.objects.filter(definition_key=definition_key, active=True).only(
                "pk", "event_types"
            )
        ]
        ttl = float(getattr(settings, "FLOWDESK_EVENTS_SUBSCRIPTIONS_TTL", 5))
        _active_cache[definition_key] = (now + ttl, found)
        return found

    @property
    def stream_key(self) -> str:
        """The Redis key of a stream subscription: always under ``flowdesk:events:``."""
        if not STREAM_NAME_RE.match(self.stream or ""):
            raise ValueError(f"not a stream name: {self.stream!r}")
        return STREAM_PREFIX + self.stream

    def clean(self) -> None:
        """What a subscription must be, whoever saves it (the admin form and the API call this).

        A webhook's URL must reach a public address (``integrations.webhook_targets``)."""
        from integrations import webhook_targets
        from processes.models import EventType

        errors = {}
        if self.kind == SubscriptionKind.WEBHOOK:
            if not self.url:
                errors["url"] = "a webhook needs a URL"
            else:
                try:
                    webhook_targets.check_url(self.url)
                except webhook_targets.TargetRefused as exc:
                    errors["url"] = str(exc)
        if self.kind == SubscriptionKind.REDIS_STREAM:
            if not self.stream:
                errors["stream"] = "a Redis stream subscription needs a stream name"
            elif not STREAM_NAME_RE.match(self.stream):
                errors["stream"] = STREAM_NAME_HELP
        if not isinstance(self.event_types, list) or any(
            t not in EventType.values for t in self.event_types
        ):
            errors["event_types"] = f"a list of event types among: {', '.join(EventType.values)}"
        if isinstance(self.max_attempts, int) and self.max_attempts < 1:
            errors["max_attempts"] = "at least 1"
        if errors:
            raise ValidationError(errors)


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending (will be delivered or retried)"
    SENDING = "sending", "Sending"
    DELIVERED = "delivered", "Delivered"
    DEAD = "dead", "Dead letter (gave up; replay it)"


class EventDelivery(OutboxRow):
    """The outbox: one process event for one subscription, delivered at least once.

    A process's events go out in event-id order per subscription: a delivery waits while an
    earlier one of the same subscription and process is undelivered (pending, sending or dead)."""

    # No database constraint: an engine transaction in another process may still write rows for
    # a subscription deleted within its cache's TTL; such rows join nothing and are never sent.
    subscription = models.ForeignKey(
        EventSubscription,
        on_delete=models.CASCADE,
        related_name="deliveries",
        db_constraint=False,
    )
    event_id = models.BigIntegerField(help_text="The ProcessEvent id: the idempotency key.")
    process_id = models.UUIDField()
    event_type = models.CharField(max_length=40)
    status = models.CharField(
        max_length=20, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(
        max_length=ERROR_CHARS,
        blank=True,
        default="",
        help_text="The last attempt's error class (timeout, HTTP 500, ...), never the answer.",
    )

    class Meta:
        ordering = ["subscription_id", "process_id", "event_id"]
        verbose_name_plural = "event deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "event_id"], name="delivery_once_per_event"
            )
        ]
        indexes = [
            # The head of a (subscription, process) queue: its first undelivered event.
            models.Index(
                fields=["subscription", "process_id", "event_id"],
                name="delivery_queue",
                condition=~Q(status="delivered"),
            ),
            models.Index(
                fields=["next_attempt_at"],
                name="delivery_due",
                condition=Q(status__in=["pending", "sending"]),
            ),
            models.Index(fields=["process_id"], name="delivery_process"),
        ]

    def __str__(self) -> str:
        return f"event {self.event_id} to {self.subscription_id} ({self.status})"


class DeliveryAttempt(models.Model):
    """The delivery log: one row per attempt, with its status code, its time and a short error
    class. What the subscriber answered is never read nor kept: a webhook URL must not become a
    way to read what the server can reach."""

    delivery = models.ForeignKey(EventDelivery, on_delete=models.CASCADE, related_name="log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    ok = models.BooleanField(default=False)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="How long the attempt took (milliseconds)."
    )
    error = models.CharField(
        max_length=ERROR_CHARS,
        blank=True,
        default="",
        help_text="timeout, connection refused, HTTP 500, refused target: ... (never the answer).",
    )
    replay = models.BooleanField(default=False, help_text="The first attempt after a replay.")

    class Meta:
        ordering = ["delivery_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="attempt_number_unique")
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}: {'ok' if self.ok else self.error}"


class WatchdogState(models.Model):
    """What ``manage.py watchdog`` saw last: one row, so an outage is alerted once and its end
    once, whichever machine's cron runs the watchdog."""

    name = models.CharField(max_length=50, primary_key=True, default="flowdesk")
    down_since = models.DateTimeField(null=True, blank=True, help_text="None: healthy.")
    alerted_at = models.DateTimeField(null=True, blank=True, help_text="The outage's SMS.")
    reasons = models.JSONField(default=list, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    outages = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"watchdog {self.name}: " + (
            f"down since {self.down_since}" if self.down_since else "ok"
        )
