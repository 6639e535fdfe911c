"""SMS alerting: recipients, incidents and the SMS outbox."""

from __future__ import annotations

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from integrations.models.outbox import OutboxRow


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


class SmsMessage(OutboxRow):
    """The SMS outbox: one row per incident and recipient, so each incident is sent once."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="messages")
    phone = models.CharField(max_length=20)
    body = models.TextField()
    status = models.CharField(max_length=20, choices=SmsStatus.choices, default=SmsStatus.PENDING)
    last_error = models.TextField(blank=True, default="")
    provider_id = models.CharField(max_length=100, blank=True, default="")
    sent_at = models.DateTimeField(null=True, blank=True)
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
