"""Inline steps: a pure-compute handler runs inside the engine transaction that makes it ready
(no queue, no lease, one ``task_completed`` event); a failed attempt retries on a worker."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from processes import engine, history, worker
from processes.models import EventType, ProcessEvent, TaskInstance
from processes.spec import parse
from processes.steps import PermanentStepError, RetryableStepError, registry
from tests.conftest import record_steps, task_states
from tests.factories import definition_data

pytestmark = pytest.mark.django_db

CALLS: list = []


@pytest.fixture(autouse=True)
def handlers():
    """``i.left``/``i.right`` return a number, ``i.total`` adds them; ``behaviours[name]`` makes
    a handler fail ("retry", "fatal", "bug", a list of those) or misbehave ("query", "object")."""
    CALLS.clear()
    behaviours = {}

    def make(name, compute):
        def handler(ctx):
            CALLS.append((name, ctx.task_name, ctx.attempt, sorted(ctx.variables)))
            outcome = behaviours.get(name, "ok")
            if isinstance(outcome, list):
                outcome = outcome.pop(0) if outcome else "ok"
            if outcome == "retry":
                raise RetryableStepError(f"{name} is busy")
            if outcome == "fatal":
                raise PermanentStepError(f"{name} refused")
            if outcome == "bug":
                raise ZeroDivisionError("division by zero")
            if outcome == "query":
                TaskInstance.objects.count()
            if outcome == "object":
                return {"when": object()}
            return compute(ctx.variables)

        return handler

    computations = {
        "i.left": lambda v: {"amount": 1000},
        "i.right": lambda v: {"amount": 101},
        "i.total": lambda v: {"total": v["left"]["amount"] + v["right"]["amount"]},
    }
    for name, compute in computations.items():
        registry.register(name, make(name, compute))
    yield behaviours
    for name in computations:
        registry.unregister(name)


@pytest.fixture
def enqueued(monkeypatch):
    """Steps handed to the queue (recorded, not sent)."""
    found = []
    record_steps(monkeypatch, lambda task_id, timeout: found.append(task_id))
    return found


def salary(inline=("left", "right", "join", "final"), retry=None):
    """The peer's shape: left ‖ right, a join after both, a final step in a second stage."""

    def task(name, handler, **more):
        found = {"task_name": name, "handler": handler, **more}
        if name in inline:
            found["inline"] = True
        if retry and name in inline:
            found["retry"] = retry
        return found

    return definition_data(
        key="inl",
        stages=[
            (
                "CALC",
                [
                    task("left", "i.left"),
                    task("right", "i.right"),
                    task("join", "flowdesk.noop", parent_task=["left", "right"]),
                ],
            ),
            ("END", [task("final", "i.total", business_status="TOTALLED")]),
        ],
    )


def start(import_definition, system_actor, data, key="I-1"):
    import_definition(data)
    return engine.process_start(definition_key="inl", business_key=key, actor=system_actor).process


def history_of(process, name):
    return list(
        ProcessEvent.objects.filter(process=process, task_name=name)
        .order_by("seq")
        .values_list("type", "data")
    )


def test_a_process_of_inline_steps_runs_to_its_end_in_its_start_transaction(
    import_definition, system_actor, enqueued, django_capture_on_commit_callbacks
):
    import_definition(salary())

    with django_capture_on_commit_callbacks(execute=True), CaptureQueriesContext(connection) as q:
        process = engine.process_start(
            definition_key="inl", business_key="I-1", actor=system_actor
        ).process

    process.refresh_from_db()
    assert process.state == "completed" and process.business_status == "TOTALLED"
    assert process.variables["final"] == {"total": 1101}  # it saw both branches' results
    assert set(task_states(process).values()) == {"completed"}
    assert enqueued == []  # nothing went through the queue
    # one transaction (a savepoint inside the test's) for the whole process
    assert sum(1 for x in q.captured_queries if x["sql"].startswith("SAVEPOINT")) == 1
    # every step is one audited event, in order, and the history rebuilds the stored state
    for name, result in (("left", {"amount": 1000}), ("final", {"total": 1101})):
        assert history_of(process, name) == [
            (EventType.TASK_COMPLETED, {"result": result, "inline": True})
        ]
    assert history.differences(process) == []
    assert [c[0] for c in CALLS] == ["i.left", "i.right", "i.total"]


def test_an_inline_join_runs_in_the_completion_of_the_last_service_branch(
    import_definition, system_actor, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        process = start(import_definition, system_actor, salary(inline=("join", "final")))
    ids = {t.name: t.pk for t in process.tasks.all()}
    assert enqueued == [ids["left"], ids["right"]]  # the service branches are queued

    assert worker.run_steps(ids["left"]) == "completed"
    assert task_states(process)["join"] == "pending"
    with CaptureQueriesContext(connection) as q:
        assert worker.run_steps(ids["right"]) == "completed"

    process.refresh_from_db()
    assert process.state == "completed" and process.variables["final"] == {"total": 1101}
    assert enqueued == [ids["left"], ids["right"]]
    # right's lease, then its completion with the join and the final step: two transactions
    assert sum(1 for x in q.captured_queries if x["sql"].startswith("SAVEPOINT")) == 2
    # the service branch is leased and audited as always; the inline steps are one event each
    assert [t for t, _ in history_of(process, "right")] == [
        EventType.TASK_SCHEDULED,
        EventType.TASK_STARTED,
        EventType.TASK_COMPLETED,
    ]
    assert [t for t, _ in history_of(process, "join")] == [EventType.TASK_COMPLETED]
    assert history.differences(process) == []


def test_a_failed_inline_attempt_retries_on_a_worker_after_its_back_off(
    import_definition, system_actor, handlers, enqueued, clock, django_capture_on_commit_callbacks
):
    handlers["i.right"] = ["retry"]
    process = start(
        import_definition, system_actor, salary(retry={"max_attempts": 2, "backoff": "PT10S"})
    )

    right = process.tasks.get(name="right")
    assert right.state == "scheduled" and right.attempts == 1
    assert right.last_error == "i.right is busy" and right.wake_at == right.scheduled_at
    assert [t for t, _ in history_of(process, "right")] == [EventType.TASK_ATTEMPT_FAILED]
    assert task_states(process)["join"] == "pending"  # waits for its parent
    assert worker.run_step(right.pk) == "skipped"  # not before its back-off

    clock.advance(11)
    with django_capture_on_commit_callbacks(execute=True):
        assert worker.sweep_timers() == {"enqueued": 1}
    assert enqueued == [right.pk]
    assert worker.run_steps(right.pk) == "completed"  # the retry is an ordinary leased step

    process.refresh_from_db()
    assert process.state == "completed" and process.variables["final"] == {"total": 1101}
    assert [t for t, _ in history_of(process, "right")] == [
        EventType.TASK_ATTEMPT_FAILED,
        EventType.TASK_STARTED,
        EventType.TASK_COMPLETED,
    ]
    assert [c[2] for c in CALLS if c[0] == "i.right"] == [1, 2]  # the attempts counted on
    assert history.differences(process) == []


@pytest.mark.parametrize(
    "behaviour, error",
    [
        ("fatal", "i.right refused"),
        ("query", "an inline handler must not query the database"),
        ("object", "the handler's result is not JSON"),
    ],
)
def test_an_inline_step_that_fails_for_good_opens_an_incident_and_alerts_once(
    import_definition,
    system_actor,
    handlers,
    monkeypatch,
    django_capture_on_commit_callbacks,
    behaviour,
    error,
):
    from integrations import alerts

    alerted = []
    monkeypatch.setattr(alerts, "incident_alert", lambda **kw: alerted.append(kw))
    handlers["i.right"] = behaviour

    with django_capture_on_commit_callbacks(execute=True):
        process = start(import_definition, system_actor, salary())

    # the start still committed: the process is there, with its incident
    process.refresh_from_db()
    right = process.tasks.get(name="right")
    assert process.state == "failed"
    assert right.state == "failed" and right.last_error.startswith(error)
    assert task_states(process)["left"] == "completed"
    assert alerted == [{"process_id": process.pk, "task_id": right.pk, "error": right.last_error}]
    assert history.differences(process) == []

    # fixed, the admin's retry runs it on a worker and the process goes on
    handlers["i.right"] = "ok"
    engine.task_retry(task_id=right.pk, actor=system_actor, reason="fixed")
    assert worker.run_steps(right.pk) == "completed"
    process.refresh_from_db()
    assert process.state == "completed" and process.variables["final"] == {"total": 1101}


def test_an_unexpected_exception_in_an_inline_handler_is_retried_like_on_a_worker(
    import_definition, system_actor, handlers
):
    handlers["i.left"] = "bug"
    process = start(import_definition, system_actor, salary(retry={"max_attempts": 3}))

    left = process.tasks.get(name="left")
    assert left.state == "scheduled" and left.attempts == 1
    assert left.last_error == "ZeroDivisionError: division by zero"


def test_a_replay_runs_an_inline_step_inline_again(import_definition, system_actor):
    process = start(import_definition, system_actor, salary())
    final = process.tasks.get(name="final")

    engine.task_replay(task_id=final.pk, actor=system_actor, reason="recompute")

    final.refresh_from_db()
    assert final.state == "completed" and final.execution == 2
    assert [t for t, _ in history_of(process, "final")][-1] == EventType.TASK_COMPLETED
    process.refresh_from_db()
    assert history.differences(process) == []


@pytest.mark.parametrize(
    "task, message",
    [
        (
            {"task_name": "a", "task_type": "HUMAN", "assigned_to": "x", "inline": True},
            "only a SERVICE task with a handler runs inline",
        ),
        ({"task_name": "a", "task_queue": "q", "inline": True}, "only a SERVICE task with a"),
        ({"task_name": "a", "handler": "flowdesk.noop", "inline": "yes"}, "must be true or false"),
    ],
)
def test_inline_is_only_for_a_service_task_with_a_handler(task, message):
    spec, errors = parse(definition_data(stages=[("S", [task])]))

    assert spec is None
    assert [(e.path, e.message[: len(message)]) for e in errors] == [
        ("stages[0].tasks[0].inline", message)
    ]
