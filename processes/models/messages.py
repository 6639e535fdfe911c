"""Messages from other systems (``POST /api/messages/``): each one received, once."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone


class ReceivedMessage(models.Model):
    """A message as it came, and what it reached. The sender's ``message_id`` makes a repeat
    change nothing; a message nothing waited for and sent with a ``buffer`` waits here until
    ``buffer_until`` for a MESSAGE task that starts waiting, then goes to the first one.

    Written only by ``processes.engine.messages``.
    """

    name = models.CharField(max_length=200)
    correlation_key = models.CharField(max_length=200)
    message_id = models.CharField(max_length=200, null=True, blank=True, unique=True)
    data = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    buffer_until = models.DateTimeField(
        null=True, blank=True, help_text="Kept for a task that starts waiting before this."
    )
    delivered_at = models.DateTimeField(null=True, blank=True)
    reached = models.JSONField(
        default=list, blank=True, help_text="[{process_id, task_id, task_name}] it completed."
    )

    class Meta:
        indexes = [
            models.Index(
                fields=["name", "correlation_key", "received_at"],
                name="message_buffered",
                condition=Q(delivered_at__isnull=True, buffer_until__isnull=False),
            ),
        ]
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.name} {self.correlation_key}"
