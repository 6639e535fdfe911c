"""What this app does when the engine announces something (``processes.hooks``).

Registered in ``IntegrationsConfig.ready``. A listener only writes the alert into the outbox
(one incident row and its SMS rows, in the database: fast, and kept even if the broker is down)
and queues its delivery as a django-q2 task of its own (``deliver_alert``): a slow SMS provider
never holds up a step or the timer sweep. An SMS whose delivery fails, or whose task was lost,
is retried by the ``flowdesk.sms_outbox`` schedule with back-off (``integrations.outbox``).
"""

from __future__ import annotations

from django.utils import timezone

from integrations import alerts
from processes.models import TaskInstance


def on_incident_opened(*, process_id, task_id, error: str, kind: str | None = None) -> None:
    """One SMS per incident to the on-call admins."""
    extra = {"kind": kind} if kind else {}  # a process deadline; else the task's failure
    incident = alerts.incident_alert(process_id=process_id, task_id=task_id, error=error, **extra)
    if incident is not None:
        alerts.SMS.enqueue([(incident.pk,)])


def on_task_escalated(*, task_id, from_role: str, to_role: str | None) -> None:
    """One SMS per escalation (or reminder) of an overdue human task, keyed by its due time."""
    task = TaskInstance.objects.filter(pk=task_id).only("process_id", "due_at", "escalated_at")
    task = task.first()
    if task is None:
        return
    due_at = task.due_at or task.escalated_at or timezone.now()
    incident = alerts.overdue_alert(process_id=task.process_id, task_id=task.pk, due_at=due_at)
    if incident is not None:
        alerts.SMS.enqueue([(incident.pk,)])


def deliver_alert(incident_id: int) -> dict:
    """The django-q2 task (``alerts.SMS.task``): send an incident's due SMS (what fails stays
    for the outbox)."""
    return alerts.deliver(incident_id)
