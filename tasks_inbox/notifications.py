"""People-facing notices of overdue tasks (escalations, reminders), sent after the engine commits.

A notice goes to every backend named in ``settings.FLOWDESK_INBOX_NOTIFIERS`` (dotted paths of
classes with ``send(notice)``; default: the log). Each delivery is recorded in the process
history through ``engine.notification_record``: ``notification_sent`` for an escalation,
``task_reminded`` for a reminder (an escalation without a new role), ``notification_failed``
when a backend raises. A failing backend never stops the others. The engine announces the
escalation (hook ``task_escalated``); this app listens (``TasksInboxConfig.ready``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.urls import reverse
from django.utils.module_loading import import_string

from processes import engine, queue
from processes.events import Actor
from processes.models import TaskInstance

logger = logging.getLogger(__name__)

DEFAULT_NOTIFIERS = ["tasks_inbox.notifications.LogBackend"]


@dataclass(frozen=True)
class Notice:
    kind: str  # "escalated" or "reminder"
    task_id: int
    business_key: str
    task_name: str
    role: str
    recipients: tuple[str, ...]  # usernames
    emails: tuple[str, ...] = ()
    subject: str = ""
    body: str = ""
    url: str = ""
    extra: dict = field(default_factory=dict)


class LogBackend:
    channel = "log"

    def send(self, notice: Notice) -> None:
        logger.warning("inbox notice %s: %s -> %s", notice.kind, notice.subject, notice.recipients)


class LocmemBackend:
    """Keeps notices in ``LocmemBackend.outbox`` (tests, demos)."""

    channel = "locmem"
    outbox: list[Notice] = []

    def send(self, notice: Notice) -> None:
        type(self).outbox.append(notice)


class EmailBackend:
    """Sends one e-mail per notice through Django's EMAIL_BACKEND to members with an address."""

    channel = "email"

    def send(self, notice: Notice) -> None:
        if notice.emails:
            send_mail(notice.subject, notice.body, None, list(notice.emails))


def backends() -> list:
    paths = getattr(settings, "FLOWDESK_INBOX_NOTIFIERS", DEFAULT_NOTIFIERS)
    return [import_string(path)() for path in paths]


def _members(role: str) -> list:
    if not role:
        return []
    return list(
        get_user_model()
        .objects.filter(groups__name=role, is_active=True)
        .order_by("username")
        .only("username", "email")
    )


def build_notice(*, task, kind: str, role: str, from_role: str = "") -> Notice:
    members = _members(role)
    if task.assignee_id and task.assignee not in members:
        members.append(task.assignee)
    label = task.name.replace("_", " ")
    url = settings.FLOWDESK_BASE_URL.rstrip("/") + reverse("tasks_inbox:task", args=[task.pk])
    if kind == "escalated":
        subject = f"Overdue: {label} for {task.process.business_key} now waits for {role}"
        body = (
            f"The task '{label}' of {task.process.definition_key} {task.process.business_key} "
            f"was not done in time by {from_role or 'its role'} and now waits for {role}.\n{url}\n"
        )
    else:
        subject = f"Reminder: {label} for {task.process.business_key} is overdue"
        body = (
            f"The task '{label}' of {task.process.definition_key} {task.process.business_key} "
            f"is overdue and still waits for {role}.\n{url}\n"
        )
    return Notice(
        kind=kind,
        task_id=task.pk,
        business_key=task.process.business_key,
        task_name=task.name,
        role=role,
        recipients=tuple(u.get_username() for u in members),
        emails=tuple(u.email for u in members if u.email),
        subject=subject,
        body=body,
        url=url,
    )


NOTIFY = "tasks_inbox.notifications.task_escalated"


def on_task_escalated(*, task_id, from_role: str, to_role: str | None) -> None:
    """The engine's ``task_escalated`` hook: the notices go out in a django-q2 task of their own
    (a slow mail server never holds up the timer sweep)."""
    queue.enqueue(NOTIFY, task_id, from_role, to_role)


def task_escalated(task_id, from_role: str, to_role: str | None) -> None:
    """Tell the new role (or, for a reminder, the current one) a task is overdue, through every
    backend; each delivery or failure is recorded in the process history."""
    task = TaskInstance.objects.select_related("process", "assignee").filter(pk=task_id).first()
    if task is None:
        return
    kind = "escalated" if to_role else "reminder"
    role = to_role or task.candidate_role or from_role
    notice = build_notice(task=task, kind=kind, role=role, from_role=from_role)
    actor = Actor.system("inbox notifications")
    for backend in backends():
        channel = getattr(backend, "channel", type(backend).__name__)
        error = None
        try:
            backend.send(notice)
        except Exception as exc:
            logger.exception("inbox notice for task %s via %s failed", task_id, channel)
            error = f"{type(exc).__name__}: {exc}"
        engine.notification_record(
            task_id=task_id,
            actor=actor,
            channel=channel,
            recipients=notice.recipients,
            message=notice.subject,
            error=error,
            reminder=kind == "reminder",
        )
