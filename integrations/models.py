"""SMS alerting (recipients, incidents, the SMS outbox) and the state of the two simulators."""

from __future__ import annotations

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

# --- SMS alerts -----------------------------------------------------------------------------------


def normalize_phone(value: str, region: str | None = None) -> str:
    """Return ``value`` in E.164 form (+33612345678); raise ValidationError when it is no number."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("enter a phone number such as +33 6 12 34 56 78")
    region = region or getattr(settings, "FLOWDESK_SMS_DEFAULT_REGION", None) or None
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError(f"{value!r} is not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(f"{value!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class AlertRecipientQuerySet(models.QuerySet):
    def on_call(self):
        """Active recipients whose user is an active admin (staff)."""
        return self.filter(active=True, user__is_active=True, user__is_staff=True)


class AlertRecipient(models.Model):
    """An admin's phone number for incident SMS."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_recipient"
    )
    phone = models.CharField(max_length=20, help_text="E.164, e.g. +33612345678.")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = AlertRecipientQuerySet.as_manager()

    class Meta:
        ordering = ["user__username"]

    def __str__(self) -> str:
        return f"{self.user.get_username()} {self.phone}"

    def save(self, *args, **kwargs):
        self.phone = normalize_phone(self.phone)
        super().save(*args, **kwargs)

    def clean(self) -> None:
        try:
            self.phone = normalize_phone(self.phone)
        except ValidationError as exc:
            raise ValidationError({"phone": exc.messages}) from None


class Incident(models.Model):
    """One incident alerted: a task that failed for good (one row per failure of one execution),
    or a worker cluster that stalled or resumed (no process: ``process_id`` is empty)."""

    key = models.CharField(max_length=200, unique=True, help_text="process:task:execution:event.")
    process_id = models.UUIDField(null=True, blank=True)
    task_id = models.BigIntegerField(null=True, blank=True)
    task_name = models.CharField(max_length=100, blank=True, default="")
    execution = models.PositiveIntegerField(default=1)
    error = models.TextField(blank=True, default="")
    message = models.TextField(blank=True, default="")
    note = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["process_id", "-created_at"], name="incident_process")]

    def __str__(self) -> str:
        return f"incident {self.key}"


class SmsStatus(models.TextChoices):
    PENDING = "pending", "Pending (will be sent or retried)"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed for good"
    RATE_LIMITED = "rate_limited", "Held back by the rate limit (goes into the next digest)"
    FOLDED = "folded", "Sent within a digest SMS"


class SmsMessage(models.Model):
    """The SMS outbox: one row per incident and recipient, so each incident is sent once."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="messages")
    phone = models.CharField(max_length=20)
    body = models.TextField()
    status = models.CharField(max_length=20, choices=SmsStatus.choices, default=SmsStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    provider_id = models.CharField(max_length=100, blank=True, default="")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    folded_into = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="folded",
        help_text="The digest SMS this one, held back by the rate limit, was sent in.",
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["incident", "phone"], name="sms_once_per_incident")
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="sms_due",
                condition=Q(status__in=["pending", "sending"]),
            ),
            models.Index(fields=["phone", "created_at"], name="sms_phone_created"),
            models.Index(
                fields=["phone", "created_at"],
                name="sms_held_back",
                condition=Q(status="rate_limited"),
            ),
        ]

    def __str__(self) -> str:
        return f"SMS to {self.phone} ({self.status})"


# --- simulators of the accounting and bonus systems -----------------------------------------------


class SimulatedSystem(models.TextChoices):
    ACCOUNTING = "accounting", "Accounting"
    BONUS = "bonus", "Bonus"


class SimulatorFault(models.Model):
    """Faults switched on for one simulated system (overrides FLOWDESK_SIMULATOR_FAULTS)."""

    system = models.CharField(max_length=20, choices=SimulatedSystem.choices, unique=True)
    down = models.BooleanField(default=False, help_text="Answer every call with 503.")
    latency_ms = models.PositiveIntegerField(default=0, help_text="Delay added to every call.")
    error_rate = models.FloatField(
        default=0.0, help_text="Share of calls (0 to 1) answered with a 500."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["system"]

    def __str__(self) -> str:
        return f"{self.system} faults"

    def clean(self) -> None:
        if not 0 <= self.error_rate <= 1:
            raise ValidationError({"error_rate": "must be between 0 and 1"})


class SimulatorCall(models.Model):
    """Every call a simulator answered, with its start and end (to see parallelism and retries)."""

    system = models.CharField(max_length=20, choices=SimulatedSystem.choices)
    endpoint = models.CharField(max_length=100)
    idempotency_key = models.CharField(max_length=200, blank=True, default="")
    status_code = models.PositiveIntegerField()
    replayed = models.BooleanField(default=False)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()

    class Meta:
        ordering = ["started_at"]
        indexes = [models.Index(fields=["idempotency_key"], name="simcall_key")]

    def __str__(self) -> str:
        return f"{self.system} {self.endpoint} {self.status_code}"


class SimulatorResponse(models.Model):
    """The stored answer to an idempotent request: the same key gets the same answer again."""

    system = models.CharField(max_length=20, choices=SimulatedSystem.choices)
    endpoint = models.CharField(max_length=100)
    idempotency_key = models.CharField(max_length=200)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveIntegerField()
    body = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["system", "endpoint", "idempotency_key"], name="simresponse_key_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.system} {self.endpoint} {self.idempotency_key}"


class SimulatorPayout(models.Model):
    """A payout recorded in the simulated accounting system."""

    employee_id = models.CharField(max_length=32)
    period = models.CharField(max_length=7)
    salary_base = models.DecimalField(max_digits=12, decimal_places=2)
    bonus = models.DecimalField(max_digits=12, decimal_places=2)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    reference = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["employee_id", "period"], name="payout_once_per_period")
        ]

    def __str__(self) -> str:
        return f"payout {self.pk} {self.employee_id} {self.period} {self.total}"


class SimulatorNotice(models.Model):
    """A rejection notice received by the simulated bonus system."""

    employee_id = models.CharField(max_length=32)
    period = models.CharField(max_length=7)
    decided_by = models.CharField(max_length=150, blank=True, default="")
    comment = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"rejection notice {self.employee_id} {self.period}"


# --- events out: subscriptions, the delivery outbox and its log -----------------------------------


def new_secret() -> str:
    import secrets

    return secrets.token_hex(32)


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
        max_length=200, blank=True, default="", help_text="Redis stream: XADD to this key."
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

    def clean(self) -> None:
        from processes.models import EventType

        if self.kind == SubscriptionKind.WEBHOOK and not self.url:
            raise ValidationError({"url": "a webhook needs a URL"})
        if self.kind == SubscriptionKind.REDIS_STREAM and not self.stream:
            raise ValidationError({"stream": "a Redis stream subscription needs a stream name"})
        if not isinstance(self.event_types, list) or any(
            t not in EventType.values for t in self.event_types
        ):
            raise ValidationError(
                {"event_types": f"a list of event types among: {', '.join(EventType.values)}"}
            )
        if self.max_attempts < 1:
            raise ValidationError({"max_attempts": "at least 1"})


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending (will be delivered or retried)"
    SENDING = "sending", "Sending"
    DELIVERED = "delivered", "Delivered"
    DEAD = "dead", "Dead letter (gave up; replay it)"


class EventDelivery(models.Model):
    """The outbox: one process event for one subscription, delivered at least once.

    A process's events go out in event-id order per subscription: a delivery waits while an
    earlier one of the same subscription and process is undelivered (pending, sending or dead)."""

    subscription = models.ForeignKey(
        EventSubscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    event_id = models.BigIntegerField(help_text="The ProcessEvent id: the idempotency key.")
    process_id = models.UUIDField()
    event_type = models.CharField(max_length=40)
    status = models.CharField(
        max_length=20, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    replays = models.PositiveIntegerField(
        default=0, help_text="Times an admin replayed it from the dead letters."
    )
    created_at = models.DateTimeField(default=timezone.now)

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
    """The delivery log: one row per attempt, with what the subscriber answered."""

    delivery = models.ForeignKey(EventDelivery, on_delete=models.CASCADE, related_name="log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    ok = models.BooleanField(default=False)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
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
