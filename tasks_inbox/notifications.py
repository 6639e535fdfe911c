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
from django.utils import timezone
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
    _deliver(notice, task_id=task_id, reminder=kind == "reminder")
    if kind == "escalated":
        away = escalated_away_notice(task, notice)
        if away is not None:
            _deliver(away, task_id=task_id)


def escalated_away_notice(task, escalation: Notice) -> Notice | None:
    """Those who held the task before (its assignee, its claimant) are told it moved on, rather
    than seeing it vanish from their inbox; they can still read it."""
    told = set(escalation.recipients)
    people = [
        u
        for u in get_user_model()
        .objects.filter(pk__in=task.participants or [], is_active=True)
        .order_by("username")
        .only("username", "email")
        if u.get_username() not in told
    ]
    if not people:
        return None
    label = task.name.replace("_", " ")
    when = task.escalated_at or timezone.now()
    subject = f"Escalated: {label} for {task.process.business_key} now waits for {escalation.role}"
    body = (
        f"'{label}' of {task.process.definition_key} {task.process.business_key} was overdue and "
        f"was escalated to {escalation.role} at {when:%Y-%m-%d %H:%M %Z}: you no longer need to "
        f"act on it. You can still read it: {escalation.url}\n"
    )
    return Notice(
        kind="escalated_away",
        task_id=task.pk,
        business_key=task.process.business_key,
        task_name=task.name,
        role=escalation.role,
        recipients=tuple(u.get_username() for u in people),
        emails=tuple(u.email for u in people if u.email),
        subject=subject,
        body=body,
        url=escalation.url,
    )


def _deliver(notice: Notice, *, task_id, reminder: bool = False) -> None:
    """Send ``notice`` through every backend and record each delivery or failure."""
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
            reminder=reminder,
        )


OPENED = "tasks_inbox.notifications.task_opened"
OPENED_PREFIX = "New task for you: "


def on_task_opened(*, task_id) -> None:
    """The engine's ``task_opened`` hook: "a new task for you", in a django-q2 task of its own,
    when ``FLOWDESK_NEW_TASK_NOTICES`` is on (by default once mail is configured)."""
    if getattr(settings, "FLOWDESK_NEW_TASK_NOTICES", False):
        queue.enqueue(OPENED, task_id)


def task_opened(task_id) -> None:
    """Tell the task's assignee (else its role's members) that it waits for them; once per task
    (a notice already in its history is not sent again), recorded like every notice."""
    from processes.models import EventType, ProcessEvent, TaskState

    task = TaskInstance.objects.select_related("process", "assignee").filter(pk=task_id).first()
    if task is None or task.state != TaskState.SCHEDULED:
        return
    already = ProcessEvent.objects.filter(
        task_id=task.pk,
        type=EventType.NOTIFICATION_SENT,
        data__message__startswith=OPENED_PREFIX,
    )
    if already.exists():
        return
    members = [task.assignee] if task.assignee_id else _members(task.candidate_role)
    label = task.name.replace("_", " ")
    url = settings.FLOWDESK_BASE_URL.rstrip("/") + reverse("tasks_inbox:task", args=[task.pk])
    subject = f"{OPENED_PREFIX}{label} for {task.process.business_key}"
    due = f" It is due {task.due_at:%Y-%m-%d %H:%M %Z}." if task.due_at else ""
    body = (
        f"'{label}' of {task.process.definition_key} {task.process.business_key} waits for "
        f"{'you' if task.assignee_id else 'your role ' + task.candidate_role}.{due}\n{url}\n"
    )
    notice = Notice(
        kind="opened",
        task_id=task.pk,
        business_key=task.process.business_key,
        task_name=task.name,
        role=task.candidate_role,
        recipients=tuple(u.get_username() for u in members),
        emails=tuple(u.email for u in members if u.email),
        subject=subject,
        body=body,
        url=url,
    )
    _deliver(notice, task_id=task_id)
