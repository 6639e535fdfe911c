"""Escalation with a controlled clock: overdue -> reassigned, event written, notice through the seam."""

import datetime as dt
from unittest import mock

import pytest
from django.urls import reverse
from django.utils import timezone

from integrations import alerts
from integrations.models import AlertRecipient, Incident
from integrations.sms.backends import locmem
from processes import engine, worker
from processes.events import Actor
from processes.models import EventType, ProcessEvent
from tasks_inbox import notifications, selectors
from tasks_inbox.notifications import LocmemBackend
from tests.factories import UserFactory
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


@pytest.fixture
def sms(settings):
    """An on-call admin with a phone, and SMS kept in memory."""
    settings.FLOWDESK_SMS_BACKEND = "integrations.sms.backends.locmem.SmsBackend"
    locmem.outbox.clear()
    oncall = UserFactory(username="oncall", is_staff=True)
    AlertRecipient.objects.create(user=oncall, phone="+33612345678")
    yield locmem.outbox
    locmem.outbox.clear()


def sweep_at(when):
    """Run the timer sweep as if the clock said ``when``."""
    with mock.patch("processes.worker.timezone.now", return_value=when):
        return worker.sweep_timers()


def start_escalating(import_definition, key, business_key, escalation):
    """Start an approval process whose task has this ``escalation``; return its open task."""
    import_definition(approval_definition(key=key, escalation=escalation))
    return engine.process_start(
        definition_key=key, business_key=business_key, input={}, actor=engine.SYSTEM
    ).process.tasks.get(name="approve_bonus")


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
    assert selectors.task_for_user(user=dora, task_id=task.pk)[1].decide
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
    task = start_escalating(import_definition, "remind", "EMP-8", {"after": "PT4H", "notify": True})
    with django_capture_on_commit_callbacks(execute=True):
        assert engine.task_wake(task_id=task.pk, now=task.wake_at + dt.timedelta(seconds=1)) == (
            "escalated"
        )
    task.refresh_from_db()
    assert task.candidate_role == "managers"
    assert selectors.task_for_user(user=people["candidate"], task_id=task.pk)[1].decide
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
    assert failed.data == {
        "channel": "broken",
        "error": "RuntimeError: mail server down",
        "recipients": ["dora"],
    }
    assert events_of(task, EventType.NOTIFICATION_SENT)
    LocmemBackend.outbox = []


def test_decided_task_does_not_escalate(start, people, outbox, django_capture_on_commit_callbacks):
    task = start()
    engine.task_decide(
        task_id=task.pk,
        actor=Actor.for_user(people["candidate"]),
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


def sms_events(task):
    return [e for e in events_of(task, EventType.NOTIFICATION_SENT) if e.data["channel"] == "sms"]


def test_escalation_alerts_the_admins_once_after_commit(
    start, people, outbox, sms, django_capture_on_commit_callbacks
):
    # given an open task past its due time
    task = start("EMP-9")
    later = task.due_at + dt.timedelta(minutes=1)

    # when the sweep escalates it: nothing is sent before the commit
    with django_capture_on_commit_callbacks() as callbacks:
        assert sweep_at(later) == {"escalated": 1}
    assert sms == [] and outbox == []
    for callback in callbacks:
        callback()

    # then one SMS to the on-call admin, besides the notice to the new role, both in the history
    (alert,) = sms
    assert alert.to == "+33612345678"
    assert alert.body.startswith(
        "[Flowdesk] Overdue: approval EMP-9, task approve_bonus is overdue"
    )
    assert len(outbox) == 1
    (recorded,) = sms_events(task)
    assert recorded.data["recipients"] == ["+33612345678"]
    task.refresh_from_db()
    assert Incident.objects.get().key.endswith(f":overdue:{task.due_at.isoformat()}")

    # and the same escalation notified again (a redelivered callback) sends no second SMS
    notifications.task_escalated(task_id=task.pk, from_role="managers", to_role="directors")
    assert len(sms) == 1 and len(sms_events(task)) == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep_at(later + dt.timedelta(days=5)) == {}
    assert len(sms) == 1


def test_a_reminder_alerts_the_admins_too(
    import_definition, people, outbox, sms, django_capture_on_commit_callbacks
):
    task = start_escalating(
        import_definition, "remind", "EMP-10", {"after": "PT4H", "notify": True}
    )
    with django_capture_on_commit_callbacks(execute=True):
        engine.task_wake(task_id=task.pk, now=task.wake_at + dt.timedelta(seconds=1))
    (alert,) = sms
    assert "EMP-10" in alert.body and "overdue since" in alert.body
    assert events_of(task, EventType.TASK_REMINDED)


def test_an_escalation_without_notify_alerts_nobody(
    import_definition, people, outbox, sms, django_capture_on_commit_callbacks
):
    task = start_escalating(
        import_definition, "quiet", "EMP-11", {"after": "P1D", "to": "directors", "notify": False}
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert engine.task_wake(task_id=task.pk, now=task.wake_at + dt.timedelta(seconds=1)) == (
            "escalated"
        )
    assert sms == [] and outbox == []
    assert not Incident.objects.exists()


def test_an_alert_that_fails_never_breaks_the_escalation(
    start, people, outbox, sms, monkeypatch, django_capture_on_commit_callbacks
):
    def broken(**kwargs):
        raise RuntimeError("alerts unavailable")

    monkeypatch.setattr(alerts, "overdue_alert", broken)
    task = start("EMP-12")
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep_at(task.due_at + dt.timedelta(minutes=1)) == {"escalated": 1}
    task.refresh_from_db()
    assert task.candidate_role == "directors"
    assert sms == [] and len(outbox) == 1
    assert events_of(task, EventType.TASK_ESCALATED, EventType.NOTIFICATION_SENT)


def test_a_failing_notifier_still_alerts_the_admins(
    start, people, sms, settings, django_capture_on_commit_callbacks
):
    settings.FLOWDESK_INBOX_NOTIFIERS = ["tests.tasks_inbox.test_escalation.BrokenBackend"]
    task = start("EMP-13")
    with django_capture_on_commit_callbacks(execute=True):
        engine.task_wake(task_id=task.pk, now=task.due_at + dt.timedelta(minutes=1))
    assert len(sms) == 1
    assert events_of(task, EventType.NOTIFICATION_FAILED)
