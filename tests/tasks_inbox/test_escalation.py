"""Escalation with a controlled clock: overdue -> reassigned, event written, notice through the seam."""

import datetime as dt
from unittest import mock

import pytest
from django.urls import reverse
from django.utils import timezone

from processes import engine, worker
from processes.models import EventType, ProcessEvent
from tasks_inbox import selectors
from tasks_inbox.notifications import LocmemBackend
from tests.tasks_inbox.conftest import approval_definition


class BrokenBackend:
    channel = "broken"

    def send(self, notice):
        raise RuntimeError("mail server down")


@pytest.fixture
def outbox(settings):
    settings.FLOWDESK_INBOX_NOTIFIERS = ["tasks_inbox.notifications.LocmemBackend"]
    LocmemBackend.outbox = []
    yield LocmemBackend.outbox
    LocmemBackend.outbox = []


def sweep_at(when):
    """Run the timer sweep as if the clock said ``when``."""
    with mock.patch("processes.worker.timezone.now", return_value=when):
        return worker.sweep_timers()


def events_of(task, *types):
    return list(ProcessEvent.objects.filter(task=task, type__in=types).order_by("seq"))


def test_overdue_task_escalates_to_the_next_role_and_notifies_it(
    start, people, outbox, client, django_capture_on_commit_callbacks
):
    # given an open task due in two days
    task = start("EMP-7")
    opened = task.scheduled_at
    assert task.due_at == task.wake_at
    assert abs(task.due_at - opened - dt.timedelta(days=2)) < dt.timedelta(seconds=1)
    mia, dora = people["candidate"], people["director"]

    # when the sweep runs one minute before the due time, nothing happens
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep_at(task.due_at - dt.timedelta(minutes=1)) == {}
    assert not selectors.inbox_tasks(
        user=mia, tab="overdue", now=task.due_at - dt.timedelta(minutes=1)
    ).exists()
    # it is marked overdue once the due time passed
    later = task.due_at + dt.timedelta(minutes=1)
    assert [t.pk for t in selectors.inbox_tasks(user=mia, tab="overdue", now=later)] == [task.pk]

    # when the sweep runs after the due time
    with django_capture_on_commit_callbacks(execute=True):
        outcomes = sweep_at(later)

    # then the task moved to the directors
    assert outcomes == {"escalated": 1}
    task.refresh_from_db()
    assert task.candidate_role == "directors"
    assert task.escalated_at == later and task.wake_at is None
    assert selectors.task_for_user(user=mia, task_id=task.pk) is None
    assert selectors.can_act(dora, task)
    assert [t.pk for t in selectors.inbox_tasks(user=dora, tab="roles")] == [task.pk]
    # an event with the system actor
    (escalated,) = events_of(task, EventType.TASK_ESCALATED)
    assert escalated.data == {"from_role": "managers", "to_role": "directors"}
    assert escalated.actor_type == "system" and escalated.actor_label == "timer sweep"
    # a notice through the seam, to the new role, recorded in the history
    (notice,) = outbox
    assert notice.kind == "escalated"
    assert notice.recipients == ("dora",)
    assert "EMP-7" in notice.subject and notice.url.endswith(f"/inbox/tasks/{task.pk}/")
    (sent,) = events_of(task, EventType.NOTIFICATION_SENT)
    assert sent.data["channel"] == "locmem" and sent.data["recipients"] == ["dora"]
    assert sent.seq > escalated.seq

    # and the pages agree
    client.force_login(mia)
    assert client.get(reverse("tasks_inbox:task", args=[task.pk])).status_code == 404
    client.force_login(dora)
    page = client.get(reverse("tasks_inbox:task", args=[task.pk]))
    assert page.status_code == 200
    assert "escalated from managers to directors" in page.content.decode()

    # a second sweep does nothing more
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep_at(later + dt.timedelta(days=5)) == {}
    assert len(outbox) == 1


def test_escalation_without_a_new_role_is_a_reminder(
    import_definition, people, outbox, django_capture_on_commit_callbacks
):
    import_definition(
        approval_definition(key="remind", escalation={"after": "PT4H", "notify": True})
    )
    task = engine.process_start(
        definition_key="remind", business_key="EMP-8", input={}, actor=engine.SYSTEM
    ).process.tasks.get(name="approve_bonus")
    with django_capture_on_commit_callbacks(execute=True):
        assert engine.task_wake(task_id=task.pk, now=task.wake_at + dt.timedelta(seconds=1)) == (
            "escalated"
        )
    task.refresh_from_db()
    assert task.candidate_role == "managers"
    assert selectors.can_act(people["candidate"], task)
    (notice,) = outbox
    assert notice.kind == "reminder" and set(notice.recipients) == {"mia", "paul"}
    (reminded,) = events_of(task, EventType.TASK_REMINDED)
    assert set(reminded.data["recipients"]) == {"mia", "paul"}


def test_a_failing_notifier_is_recorded_and_does_not_stop_the_others(
    start, people, settings, django_capture_on_commit_callbacks
):
    settings.FLOWDESK_INBOX_NOTIFIERS = [
        "tests.tasks_inbox.test_escalation.BrokenBackend",
        "tasks_inbox.notifications.LocmemBackend",
    ]
    LocmemBackend.outbox = []
    task = start()
    with django_capture_on_commit_callbacks(execute=True):
        engine.task_wake(task_id=task.pk, now=timezone.now() + dt.timedelta(days=3))
    assert len(LocmemBackend.outbox) == 1
    (failed,) = events_of(task, EventType.NOTIFICATION_FAILED)
    assert failed.data == {"channel": "broken", "error": "RuntimeError: mail server down"}
    assert events_of(task, EventType.NOTIFICATION_SENT)
    LocmemBackend.outbox = []


def test_decided_task_does_not_escalate(start, people, outbox, django_capture_on_commit_callbacks):
    task = start()
    engine.task_decide(
        task_id=task.pk,
        actor=engine.Actor.for_user(people["candidate"]),
        decision="approve",
        data={"amount": 10},
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert "escalated" not in sweep_at(timezone.now() + dt.timedelta(days=3))
    assert outbox == []
    assert not events_of(task, EventType.TASK_ESCALATED)


def test_email_backend_mails_the_new_role(
    start, people, settings, mailoutbox, django_capture_on_commit_callbacks
):
    settings.FLOWDESK_INBOX_NOTIFIERS = ["tasks_inbox.notifications.EmailBackend"]
    task = start("EMP-MAIL")
    with django_capture_on_commit_callbacks(execute=True):
        engine.task_wake(task_id=task.pk, now=timezone.now() + dt.timedelta(days=3))
    (mail,) = mailoutbox
    assert mail.to == ["dora@example.com"]
    assert "EMP-MAIL" in mail.subject and f"/inbox/tasks/{task.pk}/" in mail.body
    (sent,) = events_of(task, EventType.NOTIFICATION_SENT)
    assert sent.data["channel"] == "email"
