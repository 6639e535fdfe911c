"""Compensations of a cancelled process are engine work like steps: ``cancelling`` until each is
done or skipped, newest first, with leases, retries after back-off, incidents and one SMS."""

import pytest

from integrations.models import AlertRecipient, SmsMessage
from processes import engine, queue, worker
from processes.errors import Conflict
from processes.history import differences
from processes.models import EventType, ProcessState, TaskState
from processes.steps import PermanentStepError, RetryableStepError, registry
from tests.factories import UserFactory, definition_data

pytestmark = pytest.mark.django_db

RAN: list = []


@pytest.fixture(autouse=True)
def handlers(settings):
    """``t.undo_<name>`` compensations: what each does next is ``behaviours[name]`` (a list)."""
    settings.FLOWDESK_SMS_BACKEND = "integrations.sms.backends.locmem.SmsBackend"
    RAN.clear()
    behaviours: dict[str, list] = {}

    def make(name):
        def handler(ctx):
            RAN.append((name, ctx.task_name, ctx.idempotency_key, ctx.attempt))
            outcome = behaviours.get(name, ["ok"]).pop(0) if behaviours.get(name) else "ok"
            if outcome == "retry":
                raise RetryableStepError(f"{name}: 503 from the bank")
            if outcome == "fatal":
                raise PermanentStepError(f"{name}: refused")
            return {"undone": name}

        return handler

    for name in ("reserve", "charge"):
        registry.register(f"t.undo_{name}", make(name))
    yield behaviours
    for name in ("reserve", "charge"):
        registry.unregister(f"t.undo_{name}")


@pytest.fixture
def queued(monkeypatch):
    """What the engine queued after commit: ("step"|"compensation", task id)."""
    seen = []
    monkeypatch.setattr(
        queue, "enqueue_compensation", lambda task_id, timeout: seen.append(task_id) or True
    )
    return seen


def shop(retry=None):
    retry = retry or {"max_attempts": 2, "backoff": "PT5S"}
    return definition_data(
        "shop",
        stages=[
            (
                "PAY",
                [
                    {
                        "task_name": "reserve",
                        "handler": "flowdesk.noop",
                        "compensate": "t.undo_reserve",
                    },
                    {
                        "task_name": "charge",
                        "handler": "flowdesk.noop",
                        "parent_task": ["reserve"],
                        "compensate": "t.undo_charge",
                        "retry": retry,
                    },
                ],
            ),
            ("SHIP", [{"task_name": "ship", "task_type": "SERVICE", "task_queue": "ship"}]),
        ],
    )


def paid_process(import_definition, system_actor, data=None):
    import_definition(data or shop())
    process = engine.process_start(
        definition_key="shop", business_key="ORDER-1", actor=system_actor
    ).process
    for name in ("reserve", "charge"):
        worker.run_step(process.tasks.get(name=name).pk)
    assert process.tasks.get(name="ship").state == TaskState.SCHEDULED
    return process


def cancel(process, system_actor, capture):
    with capture(execute=True):
        engine.process_cancel(process_id=process.pk, actor=system_actor, reason="withdrawn")
    process.refresh_from_db()
    return process


def run(task_id, capture):
    with capture(execute=True):
        return worker.run_compensation(task_id)


def states(process):
    return dict(process.tasks.values_list("name", "state"))


def test_cancel_compensates_newest_first_then_the_process_is_cancelled(
    import_definition, system_actor, queued, django_capture_on_commit_callbacks
):
    # given a paid order whose shipping waits
    process = paid_process(import_definition, system_actor)
    charge, reserve = process.tasks.get(name="charge"), process.tasks.get(name="reserve")

    # when it is cancelled
    process = cancel(process, system_actor, django_capture_on_commit_callbacks)

    # then it is cancelling: the open task is cancelled, the newest compensation alone is queued
    assert process.state == ProcessState.CANCELLING
    assert states(process) == {
        "reserve": "compensating",
        "charge": "compensating",
        "ship": "cancelled",
    }
    assert queued == [charge.pk]

    # a worker undoes charge; reserve comes next
    assert run(charge.pk, django_capture_on_commit_callbacks) == "completed"
    assert queued == [charge.pk, reserve.pk]
    process.refresh_from_db()
    assert process.state == ProcessState.CANCELLING
    # a repeated delivery of charge changes nothing
    assert run(charge.pk, django_capture_on_commit_callbacks) == "skipped"

    assert run(reserve.pk, django_capture_on_commit_callbacks) == "completed"
    process.refresh_from_db()
    assert process.state == ProcessState.CANCELLED and process.completed_at is not None
    assert [(n, t, k) for n, t, k, _ in RAN] == [
        ("charge", "charge", f"{process.pk}:charge:1:compensate"),
        ("reserve", "reserve", f"{process.pk}:reserve:1:compensate"),
    ]
    types = list(process.events.order_by("seq").values_list("type", "task_name"))
    assert types[-9:] == [
        (EventType.TASK_CANCELLED, "ship"),
        (EventType.PROCESS_CANCELLING, ""),
        (EventType.COMPENSATION_SCHEDULED, "charge"),
        (EventType.COMPENSATION_SCHEDULED, "reserve"),
        (EventType.COMPENSATION_STARTED, "charge"),
        (EventType.COMPENSATION_COMPLETED, "charge"),
        (EventType.COMPENSATION_STARTED, "reserve"),
        (EventType.COMPENSATION_COMPLETED, "reserve"),
        (EventType.PROCESS_CANCELLED, ""),
    ]
    assert differences(process) == []


def test_a_process_with_nothing_to_compensate_is_cancelled_at_once(
    import_definition, system_actor, queued, django_capture_on_commit_callbacks
):
    import_definition(shop())
    process = engine.process_start(
        definition_key="shop", business_key="ORDER-2", actor=system_actor
    ).process
    process = cancel(process, system_actor, django_capture_on_commit_callbacks)
    assert process.state == ProcessState.CANCELLED
    assert queued == []
    with pytest.raises(Conflict, match="cannot cancel process: it is cancelled"):
        engine.process_cancel(process_id=process.pk, actor=system_actor)


def test_a_transient_failure_is_retried_after_the_back_off(
    import_definition, system_actor, queued, handlers, clock, django_capture_on_commit_callbacks
):
    handlers["charge"] = ["retry", "ok"]
    process = cancel(
        paid_process(import_definition, system_actor),
        system_actor,
        django_capture_on_commit_callbacks,
    )
    charge = process.tasks.get(name="charge")

    assert run(charge.pk, django_capture_on_commit_callbacks) == "attempt failed"
    charge.refresh_from_db()
    assert charge.state == TaskState.COMPENSATING and charge.last_error.endswith(
        "503 from the bank"
    )
    # too early: inside its 5 s back-off nothing runs, the timer is not due
    assert run(charge.pk, django_capture_on_commit_callbacks) == "skipped"
    assert worker.sweep_timers() == {}
    clock.advance(5)
    with django_capture_on_commit_callbacks(execute=True):
        assert worker.sweep_timers() == {"enqueued": 1}
    assert queued[-1] == charge.pk
    assert run(charge.pk, django_capture_on_commit_callbacks) == "completed"
    assert [a for n, _, _, a in RAN if n == "charge"] == [1, 2]
    assert process.events.filter(type=EventType.COMPENSATION_ATTEMPT_FAILED).count() == 1


def test_a_compensation_failing_for_good_is_an_incident_with_one_sms_then_retry_or_skip(
    import_definition, system_actor, queued, handlers, django_capture_on_commit_callbacks
):
    AlertRecipient.objects.create(user=UserFactory(is_staff=True), phone="+33612345678")
    handlers["charge"] = ["fatal", "fatal"]
    process = cancel(
        paid_process(import_definition, system_actor),
        system_actor,
        django_capture_on_commit_callbacks,
    )
    charge, reserve = process.tasks.get(name="charge"), process.tasks.get(name="reserve")

    assert run(charge.pk, django_capture_on_commit_callbacks) == "failed"
    process.refresh_from_db()
    charge.refresh_from_db()
    # an incident: the process stays cancelling, reserve waits behind charge
    assert process.state == ProcessState.CANCELLING
    assert charge.state == TaskState.COMPENSATION_FAILED
    assert states(process)["reserve"] == "compensating" and queued == [charge.pk]
    (sms,) = SmsMessage.objects.all()
    assert "charge" in sms.body and "refused" in sms.body
    failed = process.events.get(type=EventType.PROCESS_FAILED)
    assert failed.task_name == "charge" and "t.undo_charge" in failed.data["error"]

    # the operator retries it: fails again, a new incident, one more SMS
    with django_capture_on_commit_callbacks(execute=True):
        engine.task_retry(task_id=charge.pk, actor=system_actor, reason="bank is back")
    assert queued == [charge.pk, charge.pk]
    assert run(charge.pk, django_capture_on_commit_callbacks) == "failed"
    assert SmsMessage.objects.count() == 2

    # and skips it: reserve is undone, then the process is cancelled
    with django_capture_on_commit_callbacks(execute=True):
        engine.task_skip(task_id=charge.pk, actor=system_actor, reason="refunded by phone")
    assert queued[-1] == reserve.pk
    assert run(reserve.pk, django_capture_on_commit_callbacks) == "completed"
    process.refresh_from_db()
    assert process.state == ProcessState.CANCELLED
    assert states(process)["charge"] == "skipped"
    assert differences(process) == []


def test_an_expired_lease_is_taken_again_by_the_sweep(
    import_definition, system_actor, queued, clock, settings, django_capture_on_commit_callbacks
):
    settings.FLOWDESK_DEFAULT_STEP_TIMEOUT = 10
    process = cancel(
        paid_process(import_definition, system_actor),
        system_actor,
        django_capture_on_commit_callbacks,
    )
    charge = process.tasks.get(name="charge")
    # a worker takes the lease and dies (nothing reports back)
    assert engine.compensation_start(task_id=charge.pk, actor=system_actor) is not None
    assert engine.compensation_start(task_id=charge.pk, actor=system_actor) is None  # live lease
    clock.advance(10 + settings.FLOWDESK_LEASE_MARGIN + 1)

    with django_capture_on_commit_callbacks(execute=True):
        assert worker.sweep_timers() == {"requeued": 1}
    assert queued[-1] == charge.pk
    assert run(charge.pk, django_capture_on_commit_callbacks) == "completed"
    charge.refresh_from_db()
    assert charge.state == TaskState.COMPENSATED and charge.attempts == 2
    assert process.events.filter(type=EventType.COMPENSATION_REQUEUED).count() == 1


def test_a_lost_enqueue_is_recovered_by_the_sweep(
    import_definition,
    system_actor,
    clock,
    settings,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    # the broker refuses the compensation after commit: the cancel still succeeds
    settings.FLOWDESK_REENQUEUE_AFTER = 3
    monkeypatch.setattr(queue, "broker", lambda: (_ for _ in ()).throw(ConnectionError("down")))
    process = cancel(
        paid_process(import_definition, system_actor),
        system_actor,
        django_capture_on_commit_callbacks,
    )
    assert process.state == ProcessState.CANCELLING
    seen = []
    monkeypatch.setattr(
        queue, "enqueue_compensation", lambda task_id, timeout: seen.append(task_id) or True
    )
    clock.advance(3)
    with django_capture_on_commit_callbacks(execute=True):
        assert worker.sweep_timers() == {"enqueued": 1}  # the head only
    assert seen == [process.tasks.get(name="charge").pk]


def saga(fail_with="fatal"):
    """``shop`` whose third step fails for good (``on_failure: compensate``)."""
    data = shop()
    data["on_failure"] = "compensate"
    data["stages"][0]["tasks"].append(
        {
            "task_name": "book",
            "handler": "t.book",
            "parent_task": ["charge"],
            "retry": {"max_attempts": 2, "backoff": "PT5S"},
        }
    )
    return data


@pytest.fixture
def failing_book():
    def book(ctx):
        raise PermanentStepError("carrier refused the booking")

    registry.register("t.book", book)
    yield
    registry.unregister("t.book")


def test_a_step_failing_for_good_under_on_failure_compensate_undoes_the_rest_with_one_sms(
    import_definition, system_actor, queued, failing_book, django_capture_on_commit_callbacks
):
    # given an order whose booking fails for good after reserve and charge completed
    AlertRecipient.objects.create(user=UserFactory(is_staff=True), phone="+33612345678")
    import_definition(saga())
    process = engine.process_start(
        definition_key="shop", business_key="ORDER-9", actor=system_actor
    ).process
    for name in ("reserve", "charge"):
        worker.run_step(process.tasks.get(name=name).pk)
    charge, reserve = process.tasks.get(name="charge"), process.tasks.get(name="reserve")

    # when the booking fails for good
    with django_capture_on_commit_callbacks(execute=True):
        worker.run_step(process.tasks.get(name="book").pk)

    # then no incident: the process undoes what it did, newest first
    process.refresh_from_db()
    assert process.state == ProcessState.CANCELLING
    assert states(process) == {
        "reserve": "compensating",
        "charge": "compensating",
        "book": "failed",
        "ship": "cancelled",
    }
    assert queued == [charge.pk]
    assert run(charge.pk, django_capture_on_commit_callbacks) == "completed"
    assert queued == [charge.pk, reserve.pk]
    assert run(reserve.pk, django_capture_on_commit_callbacks) == "completed"
    process.refresh_from_db()
    assert process.state == ProcessState.COMPENSATED and process.completed_at is not None
    assert [n for n, *_ in RAN] == ["charge", "reserve"]
    assert states(process)["reserve"] == states(process)["charge"] == "compensated"
    # one SMS, for the failure, and none for the end
    (sms,) = SmsMessage.objects.all()
    assert "book" in sms.body and "carrier refused" in sms.body
    types = list(process.events.order_by("seq").values_list("type", "task_name"))
    assert (EventType.PROCESS_FAILED, "book") in types
    assert types[-1] == (EventType.PROCESS_COMPENSATED, "")
    assert EventType.PROCESS_CANCELLED not in [t for t, _ in types]
    assert differences(process) == []
    # a closed case: nothing more to retry or cancel
    with pytest.raises(Conflict):
        engine.task_retry(task_id=process.tasks.get(name="book").pk, actor=system_actor)
    with pytest.raises(Conflict):
        engine.process_cancel(process_id=process.pk, actor=system_actor)
    with pytest.raises(Conflict, match="a compensated process cannot be replayed"):
        engine.task_replay(task_id=charge.pk, actor=system_actor, reason="again")


def test_a_failure_with_nothing_to_undo_ends_compensated_at_once(
    import_definition, system_actor, queued, failing_book, django_capture_on_commit_callbacks
):
    data = saga()
    for task in data["stages"][0]["tasks"]:
        task.pop("compensate", None)
    import_definition(data)
    process = engine.process_start(
        definition_key="shop", business_key="ORDER-10", actor=system_actor
    ).process
    for name in ("reserve", "charge", "book"):
        with django_capture_on_commit_callbacks(execute=True):
            worker.run_step(process.tasks.get(name=name).pk)
    process.refresh_from_db()
    assert process.state == ProcessState.COMPENSATED
    assert queued == [] and RAN == []
    assert process.events.filter(type=EventType.PROCESS_COMPENSATED).count() == 1


def test_without_on_failure_a_step_failing_for_good_stays_an_incident(
    import_definition, system_actor, queued, failing_book, django_capture_on_commit_callbacks
):
    data = saga()
    del data["on_failure"]
    import_definition(data)
    process = engine.process_start(
        definition_key="shop", business_key="ORDER-11", actor=system_actor
    ).process
    for name in ("reserve", "charge", "book"):
        with django_capture_on_commit_callbacks(execute=True):
            worker.run_step(process.tasks.get(name=name).pk)
    process.refresh_from_db()
    assert process.state == ProcessState.FAILED
    assert queued == [] and states(process)["charge"] == "completed"
