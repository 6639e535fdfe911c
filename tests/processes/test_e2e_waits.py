"""TIMER and MESSAGE tasks end to end: a real worker supervisor (``manage.py workers``: its timer
loop and its qcluster) on PostgreSQL. A 2 s timer fires within a second of due; cancelling the
process cancels its timer; a timer survives a SIGKILL of the whole supervisor and fires once
after the restart; a message sent before its task waits is buffered and delivered once, its
repeat changing nothing."""

import os
import signal

import pytest

import tests.e2e_steps  # noqa: F401  (registers e2e.work, so the definitions validate)
from processes import engine
from processes.events import Actor
from processes.models import EventType, ProcessEvent, ProcessInstance, ReceivedMessage, TaskState
from tests.conftest import wait_for
from tests.factories import definition_data

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

SYSTEM = Actor.system("test")


def env(tmp_path):
    return {
        "FLOWDESK_STEP_MODULES": "tests.e2e_steps",
        "E2E_DIR": str(tmp_path),
        "FLOWDESK_Q_WORKERS": "1",
        "FLOWDESK_TIMER_TICK": "1",
    }


def timer_definition(wait="PT2S"):
    return definition_data(
        "timed",
        stages=[
            ("WAIT", [{"task_name": "pause", "task_type": "TIMER", "wait": wait}]),
            ("END", [{"task_name": "after", "handler": "e2e.work", "timeout": "PT20S"}]),
        ],
    )


def state_of(process):
    return ProcessInstance.objects.get(pk=process.pk).state


def start(key, business_key, **variables):
    return engine.process_start(
        definition_key=key, business_key=business_key, input=variables, actor=SYSTEM
    ).process


def fired(process) -> list[ProcessEvent]:
    return list(
        ProcessEvent.objects.filter(
            process=process, task_name="pause", type=EventType.TASK_COMPLETED
        )
    )


def test_a_2_second_timer_fires_within_a_second_of_due(
    postgres, supervisor, import_definition, tmp_path
):
    import_definition(timer_definition("PT2S"))
    sup = supervisor("orm", **env(tmp_path))
    sup.wait_beating()

    process = start("timed", "T-1")
    due = process.tasks.get(name="pause").wake_at

    wait_for(lambda: state_of(process) == "completed", timeout=30, message=sup.output()[-3000:])
    [event] = fired(process)
    late = (event.created_at - due).total_seconds()
    print(f"2 s timer: fired {late:.3f}s after due")
    assert 0 <= late < 1
    assert event.data["result"]["due_at"] == due.isoformat()


def test_cancelling_the_process_cancels_its_timer(
    postgres, supervisor, import_definition, tmp_path
):
    import_definition(timer_definition("PT2S"))
    sup = supervisor("orm", **env(tmp_path))
    sup.wait_beating()
    cancelled, running = start("timed", "C-1"), start("timed", "C-2")

    engine.process_cancel(process_id=cancelled.pk, actor=SYSTEM)

    # the other process's timer, due at the same moment, fired: the cancelled one's was due too
    wait_for(lambda: state_of(running) == "completed", timeout=30, message=sup.output()[-3000:])
    assert state_of(cancelled) == "cancelled"
    assert cancelled.tasks.get(name="pause").state == TaskState.CANCELLED
    assert fired(cancelled) == []


def test_a_timer_fires_once_after_a_sigkill_of_the_whole_supervisor(
    postgres, supervisor, import_definition, tmp_path
):
    import_definition(timer_definition("PT3S"))
    first = supervisor("orm", **env(tmp_path))
    first.wait_beating()
    process = start("timed", "K-1")

    tree = first.tree()
    for group in {first.proc.pid, tree["main"]} - {None}:  # every process of the unit, at once
        os.killpg(group, signal.SIGKILL)
    first.proc.wait(timeout=10)
    assert process.tasks.get(name="pause").state == TaskState.SCHEDULED

    second = supervisor("orm", **env(tmp_path), FLOWDESK_SUPERVISOR_ID="after-kill")
    wait_for(lambda: state_of(process) == "completed", timeout=60, message=second.output()[-3000:])
    assert len(fired(process)) == 1


def message_definition():
    return definition_data(
        "paid",
        stages=[
            ("WORK", [{"task_name": "prepare", "handler": "e2e.work", "seconds": 1}]),
            (
                "WAIT",
                [
                    {
                        "task_name": "payment",
                        "task_type": "MESSAGE",
                        "message": {"name": "payment_received", "key": "order_id"},
                        "result": [{"name": "amount", "type": "decimal", "required": True}],
                    }
                ],
            ),
            ("END", [{"task_name": "after", "handler": "e2e.work"}]),
        ],
    )


def test_a_message_before_its_task_waits_is_buffered_and_delivered_once(
    postgres, supervisor, import_definition, tmp_path, api, bank_of
):
    definition = import_definition(message_definition())
    client = api(bank_of(definition))
    sup = supervisor("orm", **env(tmp_path))
    sup.wait_beating()
    process = start("paid", "P-1", order_id="ORD-9")
    assert process.tasks.get(name="payment").state == TaskState.PENDING  # "prepare" runs first

    body = {
        "name": "payment_received",
        "correlation_key": "ORD-9",
        "data": {"amount": "42.00"},
        "message_id": "bank-1",
        "buffer": "PT1H",
    }
    sent = client.post("/api/messages/", body, format="json")
    assert sent.status_code == 202 and sent.json()["buffered"] is True
    repeat = client.post("/api/messages/", body, format="json")
    assert repeat.status_code == 200 and repeat.json()["duplicate"] is True

    wait_for(lambda: state_of(process) == "completed", timeout=30, message=sup.output()[-3000:])
    process.refresh_from_db()
    assert process.variables["payment"] == {"amount": "42"}
    assert ProcessEvent.objects.filter(type=EventType.MESSAGE_RECEIVED).count() == 1
    # delivered once: a second process waiting for the same key does not get it
    later = start("paid", "P-2", order_id="ORD-9")
    wait_for(
        lambda: later.tasks.get(name="payment").state == TaskState.SCHEDULED,
        timeout=30,
        message=sup.output()[-3000:],
    )
    assert ReceivedMessage.objects.get().reached == [
        {"process_id": str(process.pk), "task_name": "payment"}
    ]


@pytest.fixture
def bank_of(db):
    from tests.api.conftest import OPERATE, grant
    from tests.factories import UserFactory

    def make(definition):
        user = UserFactory(username="bank")
        grant(user, definition, OPERATE)
        return user

    return make


@pytest.fixture
def api(db):
    from tests.api.conftest import client_for

    return client_for
