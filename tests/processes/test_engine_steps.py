"""Service steps: worker entry point, retries with back-off, incidents, leases, idempotency keys."""

import datetime as dt

import pytest
from django.utils import timezone

from processes import engine, worker
from processes.errors import Conflict
from processes.models import EventType, TaskState
from processes.steps import PermanentStepError, RetryableStepError, registry
from tests.conftest import record_steps, task_states
from tests.factories import definition_data

pytestmark = pytest.mark.django_db

CALLS: list = []


@pytest.fixture(autouse=True)
def handlers():
    CALLS.clear()
    behaviours = {}

    def make(name):
        def handler(ctx):
            CALLS.append((name, ctx.idempotency_key, ctx.attempt))
            outcome = behaviours.get(name, "ok")
            if isinstance(outcome, list):
                outcome = outcome.pop(0) if outcome else "ok"
            if outcome == "retry":
                raise RetryableStepError(f"{name} timed out")
            if outcome == "fatal":
                raise PermanentStepError(f"{name} said 404")
            if outcome == "bug":
                raise ZeroDivisionError("division by zero")
            return {"value": name, "seen": sorted(k for k in ctx.variables if k != "input")}

        return handler

    for name in ("t.left", "t.right", "t.join", "t.final"):
        registry.register(name, make(name))
    yield behaviours
    for name in ("t.left", "t.right", "t.join", "t.final"):
        registry.unregister(name)


def four_step(key="four", retry=None):
    retry = retry or {"max_attempts": 3, "backoff": "PT10S"}
    return definition_data(
        key=key,
        stages=[
            (
                "CALC",
                [
                    {"task_name": "left", "handler": "t.left", "retry": retry, "timeout": "PT30S"},
                    {"task_name": "right", "handler": "t.right", "retry": retry},
                    {"task_name": "join", "handler": "t.join", "parent_task": ["left", "right"]},
                ],
            ),
            ("END", [{"task_name": "final", "handler": "t.final", "business_status": "DONE"}]),
        ],
    )


def start(import_definition, system_actor, data=None, key="P-1"):
    import_definition(data or four_step())
    return engine.process_start(
        definition_key=(data or four_step())["key"], business_key=key, actor=system_actor
    ).process


def run_ready(process):
    """Run every scheduled step once, as a worker would."""
    ids = list(
        process.tasks.filter(state=TaskState.SCHEDULED)
        .exclude(handler="")
        .values_list("id", flat=True)
    )
    return [worker.run_step(task_id) for task_id in ids]


def test_steps_are_enqueued_after_commit(
    import_definition, system_actor, django_capture_on_commit_callbacks, monkeypatch
):
    enqueued = []
    record_steps(monkeypatch, lambda task_id, timeout: enqueued.append((task_id, timeout)))
    import_definition(four_step())

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        process = engine.process_start(
            definition_key="four", business_key="X", actor=system_actor
        ).process
    assert enqueued == []  # nothing queued before commit
    for callback in callbacks:
        callback()

    left, right = process.tasks.get(name="left"), process.tasks.get(name="right")
    assert sorted(enqueued) == sorted([(left.pk, 30), (right.pk, 60)])


def test_parallel_steps_join_and_complete(import_definition, system_actor):
    process = start(import_definition, system_actor)

    assert run_ready(process) == ["completed", "completed"]
    assert task_states(process)["join"] == "scheduled"
    run_ready(process)
    run_ready(process)

    process.refresh_from_db()
    assert process.state == "completed" and process.business_status == "DONE"
    assert process.variables["join"]["seen"] == ["left", "right"]
    assert [c[0] for c in CALLS] == ["t.left", "t.right", "t.join", "t.final"]


def test_retry_with_backoff_then_success(import_definition, system_actor, handlers, clock):
    handlers["t.left"] = ["retry", "ok"]
    process = start(import_definition, system_actor)

    run_ready(process)
    left = process.tasks.get(name="left")
    assert left.state == "scheduled" and left.attempts == 1
    assert left.wake_at > timezone.now() + dt.timedelta(seconds=8)
    # a redelivery inside the back-off does not run the step early
    assert worker.run_step(left.pk) == "skipped"

    clock.advance(11)
    assert worker.sweep_timers() == {"enqueued": 1}
    assert worker.run_step(left.pk) == "completed"
    left.refresh_from_db()
    assert left.state == "completed" and left.attempts == 2
    keys = [c[1] for c in CALLS if c[0] == "t.left"]
    assert len(keys) == 2 and keys[0] == keys[1]  # same idempotency key on the retry
    types = list(process.events.filter(task=left).values_list("type", flat=True))
    assert types == [
        "task_scheduled",
        "task_started",
        "task_attempt_failed",
        "task_started",
        "task_completed",
    ]


def test_failure_after_retries_opens_incident_and_alerts_once(
    clock,
    import_definition,
    system_actor,
    handlers,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    from integrations import alerts

    alerted = []
    monkeypatch.setattr(alerts, "incident_alert", lambda **kw: alerted.append(kw))
    handlers["t.left"] = "retry"
    process = start(
        import_definition, system_actor, four_step(retry={"max_attempts": 2, "backoff": 1})
    )
    left = process.tasks.get(name="left")

    with django_capture_on_commit_callbacks(execute=True):
        worker.run_step(left.pk)
        clock.advance(5)
        worker.sweep_timers()
        worker.run_step(left.pk)

    left.refresh_from_db()
    process.refresh_from_db()
    assert left.state == "failed" and left.last_error == "t.left timed out"
    assert process.state == "failed"
    assert alerted == [{"process_id": process.pk, "task_id": left.pk, "error": "t.left timed out"}]
    # the other branch went on meanwhile; the join waits for the failed one
    assert task_states(process)["right"] == "scheduled"
    run_ready(process)
    assert task_states(process)["join"] == "pending"

    handlers["t.left"] = "ok"
    engine.task_retry(task_id=left.pk, actor=system_actor, reason="fixed")
    process.refresh_from_db()
    assert process.state == "running"
    run_ready(process)
    run_ready(process)
    run_ready(process)
    process.refresh_from_db()
    assert process.state == "completed"


def test_permanent_error_fails_at_once(import_definition, system_actor, handlers):
    handlers["t.right"] = "fatal"
    process = start(import_definition, system_actor)
    run_ready(process)
    right = process.tasks.get(name="right")
    assert right.state == "failed" and right.attempts == 1
    assert right.last_error == "t.right said 404"


def test_unexpected_exception_is_retried_and_reported(import_definition, system_actor, handlers):
    handlers["t.left"] = "bug"
    process = start(import_definition, system_actor)
    run_ready(process)
    left = process.tasks.get(name="left")
    assert left.state == "scheduled"
    assert left.last_error == "ZeroDivisionError: division by zero"


def test_expired_lease_is_requeued_and_late_result_counts_once(import_definition, system_actor):
    process = start(import_definition, system_actor)
    left = process.tasks.get(name="left")
    lease = engine.task_start(task_id=left.pk, actor=system_actor)  # a worker took it... and died
    assert lease is not None
    # a second delivery while the lease is alive does nothing
    assert worker.run_step(left.pk) == "skipped"

    left.refresh_from_db()
    assert (
        engine.task_wake(task_id=left.pk, now=left.wake_at + dt.timedelta(seconds=1)) == "requeued"
    )
    assert worker.run_step(left.pk) == "completed"
    # the first worker comes back late with its result: recorded as a duplicate
    engine.task_complete(
        task_id=left.pk, actor=system_actor, result={"late": True}, execution=lease.execution
    )

    left.refresh_from_db()
    assert left.result["value"] == "t.left"
    assert process.events.filter(task=left, type=EventType.TASK_REQUEUED).count() == 1
    assert process.events.filter(task=left, type=EventType.TASK_DUPLICATE).count() == 1


def test_a_step_lost_too_often_fails_for_good(import_definition, system_actor):
    process = start(import_definition, system_actor, four_step(retry={"max_attempts": 1}))
    left = process.tasks.get(name="left")
    outcomes = []
    for _ in range(5):
        engine.task_start(task_id=left.pk, actor=system_actor)
        left.refresh_from_db()
        outcomes.append(
            engine.task_wake(task_id=left.pk, now=left.wake_at + dt.timedelta(seconds=1))
        )
        left.refresh_from_db()
        if left.state == "failed":
            break
    assert outcomes == ["requeued", "requeued", "requeued", "failed"]
    assert "lease expired" in left.last_error


def test_sweep_acts_only_on_due_timers(import_definition, system_actor, handlers, monkeypatch):
    enqueued = []
    record_steps(monkeypatch, lambda task_id, timeout: enqueued.append(task_id))
    handlers["t.left"] = "retry"
    process = start(import_definition, system_actor)
    run_ready(process)
    assert worker.sweep_timers() == {}  # nothing due yet (back-off 10s, re-enqueue 120s)


def test_replay_runs_a_task_again_with_a_new_idempotency_key(import_definition, system_actor):
    process = start(import_definition, system_actor)
    for _ in range(3):
        run_ready(process)
    process.refresh_from_db()
    assert process.state == "completed"
    left = process.tasks.get(name="left")

    engine.task_replay(task_id=left.pk, actor=system_actor, reason="wrong input")

    process.refresh_from_db()
    states = task_states(process)
    assert process.state == "running" and process.current_stage == "CALC"
    assert states == {
        "left": "scheduled",
        "right": "completed",
        "join": "pending",
        "final": "pending",
    }
    for _ in range(3):
        run_ready(process)
    process.refresh_from_db()
    assert process.state == "completed"
    keys = [c[1] for c in CALLS if c[0] == "t.left"]
    assert keys[0].endswith(":1") and keys[1].endswith(":2")


def test_cancel_closes_open_tasks_and_refuses_more_events(import_definition, system_actor):
    process = start(import_definition, system_actor)
    engine.process_cancel(process_id=process.pk, actor=system_actor, reason="customer left")
    process.refresh_from_db()
    assert process.state == "cancelled"
    assert set(task_states(process).values()) == {"cancelled"}
    assert worker.run_step(process.tasks.get(name="left").pk) == "skipped"
    with pytest.raises(Conflict):
        engine.process_cancel(process_id=process.pk, actor=system_actor)
