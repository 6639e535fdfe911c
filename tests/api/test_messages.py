"""POST /api/messages/: a message reaches the MESSAGE tasks waiting for it (202), or is buffered
when asked, else 404; repeats (Idempotency-Key, message_id) change nothing; data breaking the
task's result is a 400 naming the field; only who may operate the definition sends. And the
``occurred_at`` incoming events carry, and a TIMER task's ``wake_at``, in the API."""

import pytest

from processes import engine
from processes.events import Actor
from processes.models import EventType, ProcessEvent, ReceivedMessage
from tests.api.conftest import OPERATE, START, VIEW, grant
from tests.factories import UserFactory, definition_data

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("test")


@pytest.fixture
def paid(import_definition):
    return import_definition(
        definition_data(
            "paid",
            stages=[
                (
                    "WAIT",
                    [
                        {
                            "task_name": "payment",
                            "task_type": "MESSAGE",
                            "message": {"name": "payment_received", "key": "order_id"},
                            "result": [{"name": "amount", "type": "decimal", "required": True}],
                        },
                        {"task_name": "pause", "task_type": "TIMER", "wait": "PT1H"},
                    ],
                ),
                ("END", [{"task_name": "after", "task_type": "SERVICE", "task_queue": "q"}]),
            ],
        )
    )


@pytest.fixture
def bank(paid):
    user = UserFactory(username="bank")
    grant(user, paid, START, VIEW, OPERATE)
    return user


def start(order_id="ORD-1", business_key="K-1"):
    return engine.process_start(
        definition_key="paid", business_key=business_key, input={"order_id": order_id}, actor=SYSTEM
    ).process


def message(**extra):
    return {
        "name": "payment_received",
        "correlation_key": "ORD-1",
        "data": {"amount": "120.00"},
        **extra,
    }


def test_a_message_reaches_the_waiting_process_202(api, bank):
    process = start()
    answer = api(bank).post(
        "/api/messages/", message(occurred_at="2026-12-07T09:15:00+01:00"), format="json"
    )
    assert answer.status_code == 202, answer.json()
    body = answer.json()
    assert [p["id"] for p in body["processes"]] == [str(process.pk)]
    assert body["reached"][0]["task_name"] == "payment" and not body["duplicate"]
    detail = api(bank).get(f"/api/processes/{process.pk}/").json()
    assert detail["variables"]["payment"] == {"amount": "120"}
    events = api(bank).get(f"/api/processes/{process.pk}/events/").json()["results"]
    done = next(e for e in events if e["type"] == "message_received")
    assert done["occurred_at"] == "2026-12-07T08:15:00Z"
    assert done["created_at"] != done["occurred_at"]


def test_nothing_waits_404_unless_buffered_then_delivered_once(api, bank):
    assert api(bank).post("/api/messages/", message(), format="json").status_code == 404
    kept = api(bank).post("/api/messages/", message(buffer="PT1H"), format="json")
    assert kept.status_code == 202 and kept.json()["buffered"] is True
    first, second = start(business_key="K-1"), start(business_key="K-2")
    assert first.tasks.get(name="payment").state == "completed"
    assert second.tasks.get(name="payment").state == "scheduled"


def test_a_repeat_changes_nothing_by_idempotency_key_or_message_id(api, bank):
    start(business_key="K-1")
    client = api(bank)
    headers = {"HTTP_IDEMPOTENCY_KEY": "pay-1"}
    one = client.post("/api/messages/", message(), format="json", **headers)
    again = client.post("/api/messages/", message(), format="json", **headers)
    assert one.status_code == 202 and again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert ReceivedMessage.objects.count() == 1

    start(order_id="ORD-2", business_key="K-2")
    body = message(correlation_key="ORD-2", message_id="bank-7")
    assert client.post("/api/messages/", body, format="json").status_code == 202
    repeat = client.post("/api/messages/", body, format="json")
    assert repeat.status_code == 200 and repeat.json()["duplicate"] is True
    assert ProcessEvent.objects.filter(type=EventType.MESSAGE_RECEIVED).count() == 2


def test_data_breaking_the_result_is_400_naming_the_field(api, bank):
    process = start()
    answer = api(bank).post("/api/messages/", message(data={"amount": "lots"}), format="json")
    assert answer.status_code == 400
    assert list(answer.json()["error"]["fields"]) == ["data.amount"]
    assert process.tasks.get(name="payment").state == "scheduled"


@pytest.mark.parametrize(
    "field, value",
    [("occurred_at", "yesterday"), ("buffer", "an hour"), ("name", ""), ("data", [1])],
)
def test_a_bad_message_is_400_naming_the_field(api, bank, field, value):
    answer = api(bank).post("/api/messages/", message(**{field: value}), format="json")
    assert answer.status_code == 400
    assert field in answer.json()["error"]["fields"]


def test_without_operate_on_the_definition_403(api, paid):
    start()
    viewer = UserFactory()
    grant(viewer, paid, VIEW)
    assert api(viewer).post("/api/messages/", message(), format="json").status_code == 403


def test_a_timer_task_shows_when_it_fires(api, bank):
    process = start()
    tasks = api(bank).get(f"/api/processes/{process.pk}/").json()["tasks"]
    pause = next(t for t in tasks if t["name"] == "pause")
    assert pause["type"] == "TIMER" and pause["wake_at"] is not None


def test_a_seed_event_may_say_when_it_happened(api, bank, import_definition):
    process = engine.process_start(
        definition_key="paid", business_key="K-9", input={"order_id": "X"}, actor=SYSTEM
    ).process
    payload = {
        "event_name": "StartWorkflow",
        "definition": "paid",
        "business_ref_no": "K-10",
        "data": {"order_id": "Y"},
        "occurred_at": "2026-12-01T10:00:00Z",
    }
    assert api(bank).post("/api/events/", payload, format="json").status_code == 202
    started = ProcessEvent.objects.get(process__business_key="K-10", type=EventType.PROCESS_STARTED)
    assert started.occurred_at.isoformat() == "2026-12-01T10:00:00+00:00"
    # only the event that records it: what follows happened when it was recorded
    assert not ProcessEvent.objects.filter(
        process__business_key="K-10", occurred_at__isnull=False
    ).exclude(pk=started.pk)
    assert process.events.filter(occurred_at__isnull=False).count() == 0


def test_the_admin_lists_buffered_messages_to_superusers_only(api, bank, admin_client, client):
    api(bank).post("/api/messages/", message(buffer="PT1H", message_id="bank-9"), format="json")
    page = admin_client.get("/admin/processes/receivedmessage/")
    assert page.status_code == 200 and b"bank-9" in page.content
    client.force_login(bank)
    assert client.get("/admin/processes/receivedmessage/").status_code in (302, 403)
