"""``manage.py watchdog``: one on-call SMS per outage (cluster down, timers late) and one when it is
over; a real cluster killed gives the 503 and exactly one SMS (issue 13)."""

import datetime as dt
import io
import os
import signal

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from integrations.models import AlertRecipient, WatchdogState
from integrations.sms.backends import locmem
from integrations.sms.backends.file import read_messages
from processes import engine
from processes.events import Actor
from processes.models import ClusterHeartbeat
from tests.conftest import wait_for
from tests.factories import UserFactory, definition_data


def watchdog(**options) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("watchdog", stdout=out, **options)
    except SystemExit as exit:
        return exit.code, out.getvalue()
    return 0, out.getvalue()


@pytest.fixture
def on_call(settings):
    settings.FLOWDESK_SMS_BACKEND = "integrations.sms.backends.locmem.SmsBackend"
    settings.FLOWDESK_BASE_URL = "https://flowdesk.example.com"
    settings.FLOWDESK_STALL_SECONDS, settings.FLOWDESK_HEARTBEAT_SECONDS = 20, 5
    settings.FLOWDESK_HEALTH_TIMER_LAG = 300
    locmem.outbox.clear()
    admin = UserFactory(username="oncall", is_staff=True)
    return AlertRecipient.objects.create(user=admin, phone="+33612345678")


def fresh_beat():
    now = timezone.now()
    return ClusterHeartbeat.objects.create(
        supervisor="host-a", cluster="flowdesk", state="ok", returned_at=now, checked_at=now
    )


@pytest.fixture
def late_timer(import_definition):
    import_definition(definition_data(key="t"))
    process = engine.process_start(
        definition_key="t", business_key="T", actor=Actor.system("test")
    ).process
    process.tasks.update(wake_at=timezone.now() - dt.timedelta(seconds=400))
    return process


@pytest.mark.django_db
def test_healthy_says_ok_and_sends_nothing(on_call):
    fresh_beat()
    assert watchdog(grace=0) == (0, "ok\n")
    assert locmem.outbox == []
    assert WatchdogState.objects.get().down_since is None


@pytest.mark.django_db
def test_late_timers_send_one_sms_per_outage_and_one_when_it_is_over(on_call, late_timer):
    fresh_beat()

    code, out = watchdog(grace=0)
    assert code == 1 and "the oldest due timer is 400s late" in out
    assert watchdog(grace=0)[0] == 1  # cron runs it again: no second SMS
    (down,) = locmem.outbox
    assert down.to == "+33612345678"
    assert down.body.startswith("[Flowdesk] Not working since ")
    assert "the oldest due timer is 400s late (is the timer sweep running?)" in down.body
    assert down.body.endswith("https://flowdesk.example.com/healthz")

    late_timer.tasks.update(wake_at=None)
    assert watchdog(grace=0) == (0, "ok\n")
    assert watchdog(grace=0) == (0, "ok\n")
    assert len(locmem.outbox) == 2
    assert locmem.outbox[1].body.startswith("[Flowdesk] Working again after ")
    state = WatchdogState.objects.get()
    assert state.outages == 1 and state.down_since is None and state.reasons == []


@pytest.mark.django_db
def test_an_outage_shorter_than_the_grace_sends_nothing(on_call, late_timer):
    fresh_beat()
    assert watchdog(grace=60)[0] == 1
    late_timer.tasks.update(wake_at=None)
    assert watchdog(grace=60)[0] == 0
    assert locmem.outbox == []
    assert WatchdogState.objects.get().outages == 0


@pytest.mark.django_db
def test_no_supervisor_at_all_is_an_outage(on_call):
    code, out = watchdog(grace=0)
    assert code == 1 and "no worker supervisor (manage.py workers) is running" in out
    assert len(locmem.outbox) == 1


@pytest.mark.e2e
@pytest.mark.postgres
def test_a_killed_cluster_gives_the_503_and_exactly_one_sms_then_one_when_it_is_back(
    postgres, supervisor, settings, tmp_path
):
    # Given a real supervised cluster, beating, with the on-call admin and the file SMS backend.
    sms_file = tmp_path / "sms.jsonl"
    settings.FLOWDESK_SMS_BACKEND = "integrations.sms.backends.file.SmsBackend"
    settings.FLOWDESK_SMS_FILE_PATH = str(sms_file)
    settings.FLOWDESK_STALL_SECONDS, settings.FLOWDESK_HEARTBEAT_SECONDS = 6, 1
    admin = UserFactory(username="oncall", is_staff=True)
    AlertRecipient.objects.create(user=admin, phone="+33612345678")
    sup = supervisor("orm")
    sup.wait_beating()
    assert Client().get("/healthz").status_code == 200
    assert watchdog(grace=0)[0] == 0

    # When the supervisor and its whole cluster are SIGKILLed (nobody is left to alert).
    tree = sup.tree()
    os.killpg(sup.proc.pid, signal.SIGKILL)
    for group in sup.groups:
        os.killpg(group, signal.SIGKILL)
    sup.proc.wait(timeout=10)
    assert tree["main"] is not None

    # Then /healthz answers 503 with the reason, and the watchdog sends exactly one SMS.
    wait_for(lambda: Client().get("/healthz").status_code == 503, timeout=30)
    body = Client().get("/healthz").json()
    assert body["status"] == "unhealthy" and "worker" in body["reasons"][0]
    for _ in range(3):
        assert watchdog(grace=0)[0] == 1
    (down,) = read_messages(sms_file)
    assert down["to"] == "+33612345678"
    assert down["body"].startswith("[Flowdesk] Not working since ")
    assert "worker" in down["body"]
    assert f"worker supervisor {sup.supervisor_id} (queue " in down["body"]  # names the host

    # And when the cluster is back, one SMS says so.
    sup2 = supervisor("orm", FLOWDESK_SUPERVISOR_ID=sup.supervisor_id)
    sup2.wait_beating()
    wait_for(lambda: Client().get("/healthz").status_code == 200, timeout=30)
    assert watchdog(grace=0)[0] == 0
    assert watchdog(grace=0)[0] == 0
    messages = read_messages(sms_file)
    assert len(messages) == 2 and messages[1]["body"].startswith("[Flowdesk] Working again after")
