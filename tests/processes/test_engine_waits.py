"""TIMER and MESSAGE tasks in the engine, with a controlled clock: a timer fires when due and not
before, ``until`` reads a date-time variable, cancel cancels the timer; a message reaches the task
waiting for its name and key, is buffered when asked and delivered once, repeats change nothing."""

import datetime as dt

import pytest

from processes import engine
from processes.errors import Conflict, Forbidden, InvalidInput, NotFound
from processes.events import Actor
from processes.models import EventType, ProcessState, ReceivedMessage, TaskState
from tests.factories import UserFactory, definition_data

pytestmark = pytest.mark.django_db


def timer_flow(key="timed", **timer):
    timer = timer or {"wait": "PT2S"}
    return definition_data(
        key,
        stages=[
            ("WAIT", [{"task_name": "pause", "task_type": "TIMER", **timer}]),
            ("END", [{"task_name": "after", "task_type": "SERVICE", "task_queue": "q"}]),
        ],
    )


def message_flow(key="paid"):
    return definition_data(
        key,
        stages=[
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
            ("END", [{"task_name": "after", "task_type": "SERVICE", "task_queue": "q"}]),
        ],
    )


def start(key, actor, business_key="K-1", **variables):
    return engine.process_start(
        definition_key=key, business_key=business_key, input=variables, actor=actor
    ).process


def sweep(capture):
    with capture(execute=True):
        return engine.timers_sweep()


def test_a_timer_fires_when_due_and_not_before(
    import_definition, system_actor, clock, django_capture_on_commit_callbacks
):
    import_definition(timer_flow())
    process = start("timed", system_actor)
    pause = process.tasks.get(name="pause")
    assert pause.state == TaskState.SCHEDULED
    assert abs(pause.wake_at - pause.scheduled_at - dt.timedelta(seconds=2)).total_seconds() < 0.1
    assert engine.next_wake() == pause.wake_at  # the loop sleeps until it

    clock.advance(1.9)
    assert sweep(django_capture_on_commit_callbacks) == {}
    clock.advance(0.1)
    assert sweep(django_capture_on_commit_callbacks) == {"fired": 1}

    pause.refresh_from_db()
    assert pause.state == TaskState.COMPLETED and pause.wake_at is None
    assert pause.result["due_at"] <= pause.result["fired_at"]
    assert process.tasks.get(name="after").state == TaskState.SCHEDULED
    scheduled = process.events.get(type=EventType.TASK_SCHEDULED, task=pause)
    assert scheduled.data["wake_at"] == pause.result["due_at"]


def test_a_timer_until_a_variable_fires_at_that_moment(
    import_definition, system_actor, clock, django_capture_on_commit_callbacks
):
    import_definition(timer_flow(until="pay.at"))
    at = dt.datetime(2031, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    process = start("timed", system_actor, pay={"at": at.isoformat()})
    assert process.tasks.get(name="pause").wake_at == at


def test_a_timer_until_a_variable_that_is_no_date_time_is_an_incident(
    import_definition, system_actor, clock, django_capture_on_commit_callbacks
):
    import_definition(timer_flow(until="pay.at"))
    process = start("timed", system_actor, pay={"at": "next tuesday"})
    assert sweep(django_capture_on_commit_callbacks) == {"failed": 1}
    pause = process.tasks.get(name="pause")
    process.refresh_from_db()
    assert pause.state == TaskState.FAILED and process.state == ProcessState.FAILED
    assert "pay.at must be an ISO 8601 date-time" in pause.last_error


def test_cancel_cancels_the_timer(
    import_definition, system_actor, clock, django_capture_on_commit_callbacks
):
    import_definition(timer_flow())
    process = start("timed", system_actor)
    engine.process_cancel(process_id=process.pk, actor=system_actor)
    pause = process.tasks.get(name="pause")
    assert pause.state == TaskState.CANCELLED and pause.wake_at is None
    clock.advance(5)
    assert sweep(django_capture_on_commit_callbacks) == {}


def test_a_timer_or_a_message_task_is_never_completed_by_hand(import_definition, system_actor):
    import_definition(timer_flow())
    pause = start("timed", system_actor).tasks.get(name="pause")
    with pytest.raises(Conflict, match="fires by itself"):
        engine.task_complete(task_id=pause.pk, actor=system_actor, result={})


# --- messages -------------------------------------------------------------------------------------


def send(actor, key="ORD-1", **kwargs):
    kwargs.setdefault("data", {"amount": "12.5"})
    return engine.message_receive(
        name="payment_received", correlation_key=key, actor=actor, **kwargs
    )


def test_a_message_reaches_the_task_waiting_for_its_key_only(import_definition, system_actor):
    import_definition(message_flow())
    one = start("paid", system_actor, "K-1", order_id="ORD-1")
    two = start("paid", system_actor, "K-2", order_id="ORD-2")
    sent_at = "2026-12-07T09:00:00+01:00"

    outcome = send(system_actor, occurred_at=sent_at)

    assert [r["process_id"] for r in outcome.reached] == [str(one.pk)]
    payment = one.tasks.get(name="payment")
    assert payment.state == TaskState.COMPLETED and payment.result == {"amount": "12.5"}
    one.refresh_from_db()
    assert one.variables["payment"] == {"amount": "12.5"}
    assert one.tasks.get(name="after").state == TaskState.SCHEDULED
    received = one.events.get(type=EventType.MESSAGE_RECEIVED)
    assert received.data["correlation_key"] == "ORD-1"
    assert received.occurred_at == dt.datetime.fromisoformat(sent_at)
    assert one.events.get(type=EventType.TASK_COMPLETED, task=payment).occurred_at is None
    assert two.tasks.get(name="payment").state == TaskState.SCHEDULED


def test_nothing_waiting_is_not_found_unless_buffered_then_delivered_once(
    import_definition, system_actor
):
    import_definition(message_flow())
    with pytest.raises(NotFound, match="nothing waits"):
        send(system_actor)
    assert not ReceivedMessage.objects.exists()

    outcome = send(system_actor, buffer="PT1H")
    assert outcome.buffered and outcome.reached == []

    first = start("paid", system_actor, "K-1", order_id="ORD-1")
    second = start("paid", system_actor, "K-2", order_id="ORD-1")

    assert first.tasks.get(name="payment").state == TaskState.COMPLETED
    assert second.tasks.get(name="payment").state == TaskState.SCHEDULED  # delivered once
    message = ReceivedMessage.objects.get()
    assert message.delivered_at is not None
    assert message.reached == [{"process_id": str(first.pk), "task_name": "payment"}]


def test_a_buffered_message_past_its_time_is_not_delivered(import_definition, system_actor, clock):
    import_definition(message_flow())
    send(system_actor, buffer="PT1M")
    clock.advance(61)
    process = start("paid", system_actor, order_id="ORD-1")
    assert process.tasks.get(name="payment").state == TaskState.SCHEDULED


def test_the_same_message_id_twice_changes_nothing(import_definition, system_actor):
    import_definition(message_flow())
    process = start("paid", system_actor, order_id="ORD-1")
    first = send(system_actor, message_id="m-1")
    again = send(system_actor, message_id="m-1", data={"amount": "99"})
    assert again.duplicate and again.reached == first.reached
    assert process.tasks.get(name="payment").result == {"amount": "12.5"}
    assert ReceivedMessage.objects.count() == 1


def test_data_breaking_the_result_is_refused_naming_the_field(import_definition, system_actor):
    import_definition(message_flow())
    process = start("paid", system_actor, order_id="ORD-1")
    with pytest.raises(InvalidInput) as refused:
        send(system_actor, data={"amount": "twelve"})
    assert list(refused.value.fields) == ["data.amount"]
    assert process.tasks.get(name="payment").state == TaskState.SCHEDULED


def test_only_who_may_operate_the_definition_sends_its_messages(import_definition, system_actor):
    import_definition(message_flow())
    start("paid", system_actor, order_id="ORD-1")
    with pytest.raises(Forbidden):
        send(Actor.api(UserFactory()))


def test_cancel_ends_the_wait(import_definition, system_actor):
    import_definition(message_flow())
    process = start("paid", system_actor, order_id="ORD-1")
    engine.process_cancel(process_id=process.pk, actor=system_actor)
    with pytest.raises(NotFound):
        send(system_actor)


# --- shown: the history, the diagram ----------------------------------------------------------


def test_the_history_and_the_diagram_show_the_timer(
    import_definition, system_actor, clock, django_capture_on_commit_callbacks
):
    from processes import diagram, timeline

    import_definition(timer_flow())
    process = start("timed", system_actor)
    pause = process.tasks.get(name="pause")
    svg = diagram.render_instance(process)
    assert 'class="task type-timer state-waiting" data-task="pause"' in svg
    assert f"fires {pause.wake_at:%Y-%m-%d %H:%M:%S} UTC" in svg

    clock.advance(2)
    sweep(django_capture_on_commit_callbacks)
    texts = [line.text for line in timeline.lines(process.events.order_by("seq"))]
    assert f"Pause waits until {pause.wake_at:%Y-%m-%d %H:%M:%S} UTC" in texts
    assert "Pause: the timer fired" in texts


def test_the_history_says_when_a_message_happened(import_definition, system_actor):
    from processes import timeline

    import_definition(message_flow())
    process = start("paid", system_actor, order_id="ORD-1")
    send(system_actor, occurred_at="2026-12-07T09:00:00+01:00")
    texts = [line.text for line in timeline.lines(process.events.order_by("seq"))]
    assert "Payment is waiting for the message payment_received (ORD-1)" in texts
    assert (
        "Message payment_received (ORD-1) received — it happened 2026-12-07 08:00:00 UTC" in texts
    )


def test_verify_history_agrees_with_timers_and_messages(
    import_definition, system_actor, clock, django_capture_on_commit_callbacks
):
    from processes.history import differences

    import_definition(timer_flow())
    import_definition(message_flow())
    timed = start("timed", system_actor)
    clock.advance(2)
    sweep(django_capture_on_commit_callbacks)
    paid = start("paid", system_actor, order_id="ORD-1")
    send(system_actor, occurred_at="2026-12-07T09:00:00Z")
    send(system_actor, key="ORD-2", buffer="PT1H")
    buffered = start("paid", system_actor, "K-2", order_id="ORD-2")
    for process in (timed, paid, buffered):
        process.refresh_from_db()
        assert differences(process) == []


def test_the_admin_task_table_says_when_a_timer_fires_and_what_a_message_task_waits_for(
    import_definition, system_actor
):
    from processes.admin.instances import task_kind

    import_definition(timer_flow())
    import_definition(message_flow())
    pause = start("timed", system_actor).tasks.get(name="pause")
    payment = start("paid", system_actor, order_id="ORD-1").tasks.get(name="payment")
    assert task_kind(pause) == f"timer, fires {pause.wake_at:%Y-%m-%d %H:%M:%S} UTC"
    assert task_kind(payment) == "message payment_received (ORD-1)"
