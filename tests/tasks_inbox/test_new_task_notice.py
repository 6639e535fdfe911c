"""'A new task for you': one notice per human task, through the inbox notifier backends; mail
configured from the environment (FLOWDESK_EMAIL_URL or EMAIL_*)."""

import pytest
from django.core import mail

from processes.models import EventType, ProcessEvent
from tasks_inbox import notifications
from tests.factories import UserFactory


@pytest.fixture
def notices_on(settings):
    settings.FLOWDESK_NEW_TASK_NOTICES = True
    settings.FLOWDESK_INBOX_NOTIFIERS = ["tasks_inbox.notifications.EmailBackend"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.mark.django_db
def test_the_role_hears_of_a_new_task_once(notices_on, start, django_capture_on_commit_callbacks):
    UserFactory(username="mia", roles=["managers"], email="mia@example.com")
    UserFactory(username="paul", roles=["managers"], email="paul@example.com")
    UserFactory(username="olga", roles=["accountants"], email="olga@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        task = start("EMP-42")
    [message] = mail.outbox
    assert message.subject == "New task for you: approve bonus for EMP-42"
    assert sorted(message.to) == ["mia@example.com", "paul@example.com"]
    assert f"/inbox/tasks/{task.pk}/" in message.body and "due" in message.body
    sent = ProcessEvent.objects.get(task_id=task.pk, type=EventType.NOTIFICATION_SENT)
    assert sent.data["recipients"] == ["mia", "paul"] and sent.data["channel"] == "email"
    # once per task: the queued notice delivered twice sends nothing more
    notifications.task_opened(task.pk)
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_no_notice_unless_turned_on(settings, start, django_capture_on_commit_callbacks):
    settings.FLOWDESK_NEW_TASK_NOTICES = False
    UserFactory(username="mia", roles=["managers"], email="mia@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        task = start("EMP-43")
    assert mail.outbox == []
    assert not ProcessEvent.objects.filter(task_id=task.pk, type=EventType.NOTIFICATION_SENT)


def test_mail_from_one_url():
    from config.mail import email_settings

    assert email_settings("smtp://bot:s%40cret@mail.example.com:587?tls=1") == {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "mail.example.com",
        "EMAIL_PORT": 587,
        "EMAIL_HOST_USER": "bot",
        "EMAIL_HOST_PASSWORD": "s@cret",
        "EMAIL_USE_TLS": True,
        "EMAIL_USE_SSL": False,
    }
    assert email_settings("smtps://mail.example.com")["EMAIL_PORT"] == 465
    assert email_settings("console://")["EMAIL_BACKEND"].endswith("console.EmailBackend")
    with pytest.raises(SystemExit, match="unknown scheme 'ftp'"):
        email_settings("ftp://x")


@pytest.mark.django_db
def test_the_assignee_hears_the_task_moved_on_when_it_escalates(
    settings, import_definition, people, django_capture_on_commit_callbacks
):
    import datetime as dt

    from processes import engine
    from tasks_inbox.notifications import LocmemBackend
    from tests.tasks_inbox.conftest import approval_definition

    settings.FLOWDESK_INBOX_NOTIFIERS = ["tasks_inbox.notifications.LocmemBackend"]
    LocmemBackend.outbox = []
    import_definition(approval_definition(key="mine", assignee="manager"))
    task = engine.process_start(
        definition_key="mine", business_key="EMP-9", input={"manager": "mia"}, actor=engine.SYSTEM
    ).process.tasks.get(name="approve_bonus")
    assert task.assignee.username == "mia"
    with django_capture_on_commit_callbacks(execute=True):
        engine.task_wake(task_id=task.pk, now=task.wake_at + dt.timedelta(seconds=1))
    escalated, away = LocmemBackend.outbox
    assert escalated.kind == "escalated" and "mia" not in escalated.recipients
    assert away.kind == "escalated_away" and away.recipients == ("mia",)
    assert away.subject == "Escalated: approve bonus for EMP-9 now waits for directors"
    assert "you no longer need to act on it" in away.body
    sent = ProcessEvent.objects.filter(task_id=task.pk, type=EventType.NOTIFICATION_SENT)
    assert [e.data["recipients"] for e in sent.order_by("seq")][-1] == ["mia"]
    LocmemBackend.outbox = []
