"""SMS alerts on incidents: one SMS per incident, rate limit, retry of unsent SMS, history.

The outbox mechanism the SMS share with events out (claims, back-off, dead letters, replay,
takeover) is tested in ``test_outbox.py``; here, what the SMS say, to whom, and what the
process history keeps of them."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_q.models import Schedule

from integrations import alerts
from integrations.models import AlertRecipient, Incident, SmsMessage, SmsStatus, normalize_phone
from integrations.sms.backends import locmem
from integrations.sms.backends.base import SmsError
from processes import engine, worker
from processes.models import EventType
from processes.steps import PermanentStepError, registry
from tests.factories import UserFactory, definition_data

pytestmark = pytest.mark.django_db


class FlakySmsBackend:
    """An SMS provider that is down while ``down`` is true."""

    down = True
    sent: list = []

    def __init__(self, **kwargs):
        pass

    def send(self, to, body):
        if FlakySmsBackend.down:
            raise SmsError("provider unreachable")
        FlakySmsBackend.sent.append((to, body))
        return "ok-1"


@pytest.fixture(autouse=True)
def sms_settings(settings):
    settings.FLOWDESK_SMS_BACKEND = "integrations.sms.backends.locmem.SmsBackend"
    settings.FLOWDESK_BASE_URL = "https://flowdesk.example.com"
    settings.FLOWDESK_SMS_RATE_LIMIT = 10
    locmem.outbox.clear()
    FlakySmsBackend.down, FlakySmsBackend.sent = True, []
    registry.register("t.boom", boom)
    yield settings
    registry.unregister("t.boom")


def boom(ctx):
    raise PermanentStepError("accounting system refused the request (404): unknown employee")


@pytest.fixture
def admin_phone():
    admin = UserFactory(username="oncall", is_staff=True)
    return AlertRecipient.objects.create(user=admin, phone="06 12 34 56 78")


@pytest.fixture
def failing_process(import_definition, system_actor):
    import_definition(
        definition_data(
            key="payroll", stages=[("MAIN", [{"task_name": "charge", "handler": "t.boom"}])]
        )
    )

    def start(business_key="EMP-1"):
        return engine.process_start(
            definition_key="payroll", business_key=business_key, actor=system_actor
        ).process

    return start


def fail(process, django_capture_on_commit_callbacks):
    task = process.tasks.get(name="charge")
    with django_capture_on_commit_callbacks(execute=True):
        worker.run_step(task.pk)
    return task


def sms_events(process):
    return list(
        process.events.filter(
            type__in=[EventType.NOTIFICATION_SENT, EventType.NOTIFICATION_FAILED]
        ).order_by("seq")
    )


def test_an_incident_sends_one_sms_with_process_task_error_and_link(
    failing_process, admin_phone, django_capture_on_commit_callbacks
):
    process = failing_process()

    fail(process, django_capture_on_commit_callbacks)

    (sms,) = locmem.outbox
    assert sms.to == "+33612345678"  # normalised to E.164
    assert "payroll EMP-1" in sms.body and "task charge failed" in sms.body
    assert "(404): unknown employee" in sms.body
    assert (
        f"https://flowdesk.example.com/admin/processes/processinstance/{process.pk}/change/"
        in sms.body
    )
    (event,) = sms_events(process)
    assert event.type == EventType.NOTIFICATION_SENT and event.task_name == "charge"
    assert event.data == {"channel": "sms", "recipients": ["+33612345678"], "message": sms.body}
    assert event.actor_label == "sms alerts"
    assert SmsMessage.objects.get().status == SmsStatus.SENT


def test_the_same_incident_alerted_again_sends_nothing(
    failing_process, admin_phone, django_capture_on_commit_callbacks
):
    process = failing_process()
    task = fail(process, django_capture_on_commit_callbacks)

    alerts.incident_opened(process_id=process.pk, task_id=task.pk, error="again")
    alerts.incident_opened(process_id=process.pk, task_id=task.pk, error="and again")

    assert len(locmem.outbox) == 1 and Incident.objects.count() == 1
    assert len(sms_events(process)) == 1


def test_a_retried_task_that_fails_again_is_a_new_incident(
    failing_process, admin_phone, django_capture_on_commit_callbacks, system_actor
):
    process = failing_process()
    task = fail(process, django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=True):
        engine.task_retry(task_id=task.pk, actor=system_actor, reason="try again")
    fail(process, django_capture_on_commit_callbacks)

    assert len(locmem.outbox) == 2 and Incident.objects.count() == 2


def test_only_active_admins_with_a_valid_number_are_alerted(
    failing_process, admin_phone, django_capture_on_commit_callbacks
):
    AlertRecipient.objects.create(user=UserFactory(username="clerk"), phone="+33698765432")
    AlertRecipient.objects.create(
        user=UserFactory(username="retired", is_staff=True), phone="+33600000001", active=False
    )
    AlertRecipient.objects.create(
        user=UserFactory(username="boss", is_staff=True), phone="+12025550143"
    )

    fail(failing_process(), django_capture_on_commit_callbacks)

    assert sorted(s.to for s in locmem.outbox) == ["+12025550143", "+33612345678"]


@pytest.mark.parametrize("bad", ["", "not a phone", "+33 1", "+999 123"])
def test_phone_numbers_are_validated(bad):
    with pytest.raises(ValidationError):
        normalize_phone(bad)
    recipient = AlertRecipient(user=UserFactory(is_staff=True), phone=bad)
    with pytest.raises(ValidationError) as error:
        recipient.full_clean()
    assert "phone" in error.value.message_dict


def test_the_rate_limit_per_recipient_holds_back_extra_sms(
    failing_process, admin_phone, django_capture_on_commit_callbacks, settings
):
    settings.FLOWDESK_SMS_RATE_LIMIT = 2
    processes = [failing_process(f"EMP-{n}") for n in range(3)]

    for process in processes:
        fail(process, django_capture_on_commit_callbacks)

    assert len(locmem.outbox) == 2
    limited = SmsMessage.objects.get(status=SmsStatus.RATE_LIMITED)
    assert "rate limit" in limited.last_error
    (event,) = sms_events(processes[2])
    assert (
        event.type == EventType.NOTIFICATION_FAILED and "rate limit of 2 SMS" in event.data["error"]
    )


def test_an_sms_that_cannot_be_sent_is_recorded_retried_and_never_breaks_the_process(
    failing_process, admin_phone, django_capture_on_commit_callbacks, settings
):
    settings.FLOWDESK_SMS_BACKEND = "tests.integrations.test_alerts.FlakySmsBackend"
    process = failing_process()

    fail(process, django_capture_on_commit_callbacks)

    process.refresh_from_db()
    assert process.state == "failed"  # the incident stands; the SMS failure changed nothing else
    message = SmsMessage.objects.get()
    assert message.status == SmsStatus.PENDING and message.attempts == 1
    assert message.next_attempt_at > timezone.now()
    (failed,) = sms_events(process)
    assert failed.type == EventType.NOTIFICATION_FAILED
    assert "provider unreachable" in failed.data["error"] and failed.data["recipients"] == [
        "+33612345678"
    ]
    assert Schedule.objects.filter(name=alerts.OUTBOX_SCHEDULE).exists()

    assert alerts.retry_pending() == {}  # not due yet
    FlakySmsBackend.down = False
    outcome = alerts.retry_pending(now=timezone.now() + dt.timedelta(minutes=2))

    assert outcome == {"sent": 1, "retry": 0, "failed": 0}
    assert len(FlakySmsBackend.sent) == 1
    assert [e.type for e in sms_events(process)] == ["notification_failed", "notification_sent"]
    assert alerts.retry_pending(now=timezone.now() + dt.timedelta(hours=1)) == {}  # sent once


def test_an_sms_gives_up_after_its_attempts(
    failing_process, admin_phone, django_capture_on_commit_callbacks, settings
):
    settings.FLOWDESK_SMS_BACKEND = "tests.integrations.test_alerts.FlakySmsBackend"
    process = failing_process()
    fail(process, django_capture_on_commit_callbacks)

    later = timezone.now()
    for _ in range(alerts.MAX_ATTEMPTS):
        later += dt.timedelta(hours=1)
        alerts.retry_pending(now=later)

    message = SmsMessage.objects.get()
    assert message.status == SmsStatus.FAILED and message.attempts == alerts.MAX_ATTEMPTS
    assert "gave up after 5 attempts" in sms_events(process)[-1].data["error"]


def test_an_admin_sends_a_failed_sms_again_with_a_new_round_of_attempts(
    failing_process, admin_phone, django_capture_on_commit_callbacks, settings, admin_client
):
    from django.urls import reverse

    settings.FLOWDESK_SMS_BACKEND = "tests.integrations.test_alerts.FlakySmsBackend"
    process = failing_process()
    fail(process, django_capture_on_commit_callbacks)
    later = timezone.now()
    for _ in range(alerts.MAX_ATTEMPTS):
        later += dt.timedelta(hours=1)
        alerts.retry_pending(now=later)
    message = SmsMessage.objects.get(status=SmsStatus.FAILED)
    FlakySmsBackend.down = False

    with django_capture_on_commit_callbacks(execute=True):  # queued after commit, sent by a worker
        page = admin_client.post(
            reverse("admin:integrations_smsmessage_changelist"),
            {"action": "retry_now", "_selected_action": [message.pk]},
            follow=True,
        )

    assert "1 SMS queued again" in page.content.decode()
    message.refresh_from_db()
    assert message.status == SmsStatus.SENT and message.replays == 1
    assert message.attempts == alerts.MAX_ATTEMPTS + 1 and len(FlakySmsBackend.sent) == 1
    assert sms_events(process)[-1].type == EventType.NOTIFICATION_SENT


def test_no_recipient_means_no_sms_and_a_note(failing_process, django_capture_on_commit_callbacks):
    process = failing_process()

    fail(process, django_capture_on_commit_callbacks)

    assert locmem.outbox == [] and sms_events(process) == []
    assert "no alert recipients" in Incident.objects.get().note


def test_on_error_notify_false_sends_nothing(
    import_definition, system_actor, admin_phone, django_capture_on_commit_callbacks
):
    import_definition(
        definition_data(
            key="quiet",
            stages=[
                (
                    "MAIN",
                    [{"task_name": "charge", "handler": "t.boom", "on_error": {"notify": False}}],
                )
            ],
        )
    )
    process = engine.process_start(
        definition_key="quiet", business_key="Q", actor=system_actor
    ).process

    fail(process, django_capture_on_commit_callbacks)

    assert locmem.outbox == []


def test_an_overdue_task_alerts_once(failing_process, admin_phone):
    process = failing_process()
    task = process.tasks.get(name="charge")
    due = timezone.now()

    alerts.task_overdue(process_id=process.pk, task_id=task.pk, due_at=due)
    alerts.task_overdue(process_id=process.pk, task_id=task.pk, due_at=due)

    (sms,) = locmem.outbox
    assert "overdue since" in sms.body


def test_the_alert_recipient_command(capsys):
    from django.core.management import CommandError, call_command

    UserFactory(username="root", is_staff=True)
    UserFactory(username="clerk")

    call_command("alert_recipient", "root", "+33 6 12 34 56 78")
    assert AlertRecipient.objects.get(user__username="root").phone == "+33612345678"
    with pytest.raises(CommandError, match="is not a (valid )?phone number"):
        call_command("alert_recipient", "root", "+33 1")
    with pytest.raises(CommandError, match="not an admin"):
        call_command("alert_recipient", "clerk", "+33612345678")


def test_alerts_over_the_rate_limit_go_out_in_one_digest_when_the_window_allows(
    failing_process, admin_phone, django_capture_on_commit_callbacks, settings
):
    # Given a limit of 2 SMS per hour and 14 incidents within it.
    settings.FLOWDESK_SMS_RATE_LIMIT, settings.FLOWDESK_SMS_RATE_WINDOW = 2, 3600
    processes = [failing_process(f"EMP-{n}") for n in range(14)]
    for process in processes:
        fail(process, django_capture_on_commit_callbacks)
    assert len(locmem.outbox) == 2
    held = SmsMessage.objects.filter(status=SmsStatus.RATE_LIMITED).order_by("created_at")
    assert held.count() == 12
    first_held = timezone.localtime(held.first().created_at)
    assert Schedule.objects.filter(name=alerts.OUTBOX_SCHEDULE).exists()  # it sends the digest

    # While the window is full, the outbox sweep sends nothing more.
    assert alerts.retry_pending() == {}
    assert len(locmem.outbox) == 2

    # When the window allows, one SMS says what was held back.
    later = timezone.now() + dt.timedelta(seconds=3601)
    assert alerts.retry_pending(now=later) == {"digests": 1}
    assert len(locmem.outbox) == 3
    digest = locmem.outbox[-1]
    assert digest.to == "+33612345678"
    assert digest.body.startswith(
        f"[Flowdesk] 12 more incidents since {first_held:%H:%M}: "
        "Incident: payroll EMP-2, task charge failed: accounting system refused"
    )
    assert "EMP-13" in digest.body or "more." in digest.body
    assert digest.body.endswith("https://flowdesk.example.com/admin/integrations/incident/")
    assert len(digest.body) < 700
    assert SmsMessage.objects.filter(status=SmsStatus.FOLDED).count() == 12
    assert SmsMessage.objects.filter(status=SmsStatus.RATE_LIMITED).count() == 0
    # the history of a held-back incident says it went out in the digest
    assert sms_events(processes[5])[-1].type == EventType.NOTIFICATION_SENT

    # and nothing is sent twice
    assert alerts.retry_pending(now=later + dt.timedelta(seconds=60)) == {}
    assert len(locmem.outbox) == 3


def test_a_held_back_cluster_alert_is_in_the_digest_too(admin_phone, settings):
    settings.FLOWDESK_SMS_RATE_LIMIT = 1
    since = timezone.now()
    alerts.cluster_stalled(supervisor="h", cluster="c", since=since, silent_for=20, restarts=1)
    alerts.cluster_resumed(supervisor="h", cluster="c", since=since, stalled_for=25, restarts=1)
    assert len(locmem.outbox) == 1

    alerts.retry_pending(now=timezone.now() + dt.timedelta(hours=2))

    assert (
        locmem.outbox[-1].body.startswith("[Flowdesk] 1 more incident since ")
        and "Workers resumed: cluster c on h works again after 25s" in locmem.outbox[-1].body
    )
