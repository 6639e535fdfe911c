"""What this app does when the engine announces something (``processes.hooks``).

Registered in ``IntegrationsConfig.ready``. An alert that can't be sent never breaks a process:
the hooks registry logs a listener's failure, and undelivered SMS stay in the outbox for the
``flowdesk.sms_outbox`` schedule to retry.
"""

from __future__ import annotations

from django.utils import timezone

from integrations import alerts
from processes.models import TaskInstance


def on_incident_opened(*, process_id, task_id, error: str) -> None:
    """One SMS per incident to the on-call admins."""
    alerts.incident_opened(process_id=process_id, task_id=task_id, error=error)


def on_task_escalated(*, task_id, from_role: str, to_role: str | None) -> None:
    """One SMS per escalation (or reminder) of an overdue human task, keyed by its due time."""
    task = TaskInstance.objects.filter(pk=task_id).only("process_id", "due_at", "escalated_at")
    task = task.first()
    if task is None:
        return
    due_at = task.due_at or task.escalated_at or timezone.now()
    alerts.task_overdue(process_id=task.process_id, task_id=task.pk, due_at=due_at)
