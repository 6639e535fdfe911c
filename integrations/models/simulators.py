"""The state of the accounting and bonus simulators."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone


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
