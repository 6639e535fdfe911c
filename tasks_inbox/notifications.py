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
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.module_loading import import_string
from django.utils.translation import gettext, gettext_noop

from processes import engine, queue
from processes.events import Actor
from processes.models import TaskInstance
from tasks_inbox import people

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


def by_language(users) -> list[list]:
    """``users`` in groups that read the same language and time zone (one notice each, written
    in the group's words: ``people.speaking``), in the order they came."""
    groups: dict[tuple[str, str], list] = {}
    for user in users:
        groups.setdefault(people.preferences(user), []).append(user)
    return list(groups.values())


def _words(task) -> dict:
    """What every notice names, for its words' placeholders."""
    return {
        "task": task.name.replace("_", " "),
        "key": task.process.business_key,
        "definition": task.process.definition_key,
    }


def _when(moment) -> str:
    """A moment in the reader's time zone, zone shown: "2026-12-07 09:30 CET"."""
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M %Z}"


def _task_url(task) -> str:
    return settings.FLOWDESK_BASE_URL.rstrip("/") + reverse("tasks_inbox:task", args=[task.pk])


def build_notices(*, task, kind: str, role: str, from_role: str = "") -> list[Notice]:
    """The escalation or reminder notice of ``task``, one per language its readers read."""
    members = _members(role)
    if task.assignee_id and task.assignee not in members:
        members.append(task.assignee)
    notices = []
    for group in by_language(members) or [[]]:
        with people.speaking(group[0] if group else None):
            words = _words(task) | {"role": role, "from": from_role or gettext("its role")}
            if kind == "escalated":
                subject = gettext("Overdue: %(task)s for %(key)s now waits for %(role)s") % words
                body = (
                    gettext(
                        "The task '%(task)s' of %(definition)s %(key)s was not done in time by "
                        "%(from)s and now waits for %(role)s."
                    )
                    % words
                )
            else:
                subject = gettext("Reminder: %(task)s for %(key)s is overdue") % words
                body = (
                    gettext(
                        "The task '%(task)s' of %(definition)s %(key)s is overdue and still waits "
                        "for %(role)s."
                    )
                    % words
                )
        notices.append(_notice(task, kind, role, group, subject, body))
    return notices


def _notice(task, kind: str, role: str, people_told, subject: str, body: str) -> Notice:
    url = _task_url(task)
    return Notice(
        kind=kind,
        task_id=task.pk,
        business_key=task.process.business_key,
        task_name=task.name,
        role=role,
        recipients=tuple(u.get_username() for u in people_told),
        emails=tuple(u.email for u in people_told if u.email),
        subject=subject,
        body=f"{body}\n{url}\n",
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
    notices = build_notices(task=task, kind=kind, role=role, from_role=from_role)
    for notice in notices:
        _deliver(notice, task_id=task_id, reminder=kind == "reminder")
    if kind == "escalated":
        told = {name for notice in notices for name in notice.recipients}
        for away in escalated_away_notices(task, role, told):
            _deliver(away, task_id=task_id)


def escalated_away_notices(task, role: str, told: set[str]) -> list[Notice]:
    """Those who held the task before (its assignee, its claimant) are told it moved on, rather
    than seeing it vanish from their inbox; they can still read it."""
    before = [
        u
        for u in get_user_model()
        .objects.filter(pk__in=task.participants or [], is_active=True)
        .order_by("username")
        .only("username", "email")
        if u.get_username() not in told
    ]
    notices = []
    for group in by_language(before):
        with people.speaking(group[0]):
            words = _words(task) | {
                "role": role,
                "when": _when(task.escalated_at or timezone.now()),
            }
            subject = gettext("Escalated: %(task)s for %(key)s now waits for %(role)s") % words
            body = (
                gettext(
                    "'%(task)s' of %(definition)s %(key)s was overdue and was escalated to %(role)s "
                    "at %(when)s: you no longer need to act on it. You can still read it:"
                )
                % words
            )
        notices.append(_notice(task, "escalated_away", role, group, subject, body))
    return notices


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
OPENED_SUBJECT = gettext_noop("New task for you: %(task)s for %(key)s")


def opened_prefixes() -> list[str]:
    """How a "new task" notice's subject begins in each language (it is sent once per task)."""
    prefixes = set()
    for code, _name in settings.LANGUAGES:
        with translation.override(code):
            prefixes.add(gettext(OPENED_SUBJECT).split("%(")[0])
    return sorted(prefixes)


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
    sent = Q()
    for prefix in opened_prefixes():
        sent |= Q(data__message__startswith=prefix)
    already = ProcessEvent.objects.filter(task_id=task.pk, type=EventType.NOTIFICATION_SENT)
    if already.filter(sent).exists():
        return
    members = [task.assignee] if task.assignee_id else _members(task.candidate_role)
    for group in by_language(members) or [[]]:
        with people.speaking(group[0] if group else None):
            words = _words(task) | {"role": task.candidate_role}
            subject = gettext(OPENED_SUBJECT) % words
            if task.assignee_id:
                body = gettext("'%(task)s' of %(definition)s %(key)s waits for you.") % words
            else:
                body = (
                    gettext("'%(task)s' of %(definition)s %(key)s waits for your role %(role)s.")
                    % words
                )
            if task.due_at:
                body += " " + gettext("It is due %(when)s.") % {"when": _when(task.due_at)}
        _deliver(
            _notice(task, "opened", task.candidate_role, group, subject, body), task_id=task_id
        )
