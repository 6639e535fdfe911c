"""The fields every outbox row carries for the outbox mechanism (``integrations.outbox``)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

PENDING, SENDING = "pending", "sending"  # the two statuses the mechanism owns, in every outbox


class OutboxRow(models.Model):
    """A row of a durable outbox: something to send, claimed before each attempt.

    A concrete outbox adds its ``status`` (``pending`` and ``sending``, plus its own words for
    sent and dead: ``Outbox.done`` and ``Outbox.dead``), its ``last_error`` and what it sends."""

    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    replays = models.PositiveIntegerField(
        default=0, help_text="Times an admin replayed it from the dead letters."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True
