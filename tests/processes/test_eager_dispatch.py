"""Eager dispatch: the worker whose completion makes a service step ready leases it in the same
transaction and runs it next; every step is still leased, committed and recorded."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from processes import engine, queue, worker
from processes.models import EventType, ProcessEvent, TaskState
from processes.steps import RetryableStepError, registry
from tests.conftest import task_states
from tests.factories import definition_data

pytestmark = pytest.mark.django_db

CALLS: list = []


@pytest.fixture(autouse=True)
def handlers():
    CALLS.clear()
    failing = set()

    def make(name):
        def handler(ctx):
            CALLS.append((name, ctx.task_name, sorted(ctx.variables)))
            if name in failing:
                raise RetryableStepError(f"{name} is down")
            return {"by": name}

        return handler

    names = ("e.left", "e.right", "e.join", "e.final")
    for name in names:
        registry.register(name, make(name))
    yield failing
    for name in names:
        registry.unregister(name)


@pytest.fixture
def enqueued(monkeypatch):
    """Steps handed to the queue (recorded, not sent)."""
    found = []
    monkeypatch.setattr(queue, "enqueue_step", lambda task_id, timeout: found.append(task_id))
    return found


def four_step(final_timeout="PT30S"):
    return definition_data(
        key="eager",
        stages=[
            (
                "CALC",
                [
                    {"task_name": "left", "handler": "e.left"},
                    {"task_name": "right", "handler": "e.right"},
                    {
                        "task_name": "join",
                        "handler": "e.join",
                        "parent_task": ["left", "right"],
                        "retry": {"max_attempts": 3, "backoff": "PT10S"},
                    },
                ],
            ),
            ("END", [{"task_name": "final", "handler": "e.final", "timeout": final_timeout}]),
        ],
    )


def start(import_definition, system_actor, data=None):
    import_definition(data or four_step())
    process = engine.process_start(
        definition_key="eager", business_key="E-1", actor=system_actor
    ).process
    return process, {t.name: t.pk for t in process.tasks.all()}


def test_the_worker_that_completes_the_last_branch_runs_the_join_and_what_follows(
    import_definition, system_actor, enqueued, django_capture_on_commit_callbacks
):
    process, ids = start(import_definition, system_actor)

    with django_capture_on_commit_callbacks(execute=True):
        assert worker.run_steps(ids["left"]) == "completed"
        assert task_states(process)["join"] == "pending"
        assert worker.run_steps(ids["right"]) == "completed"

    process.refresh_from_db()
    assert process.state == "completed"
    assert [c[0] for c in CALLS] == ["e.left", "e.right", "e.join", "e.final"]
    # the join saw both branches' results, the final step the join's
    assert CALLS[2][2] == ["left", "right"] and CALLS[3][2] == ["join", "left", "right"]
    assert enqueued == []  # neither the join nor the final step went through the queue
    # every step was still scheduled, started (leased) and completed, each in its history
    for name in ("join", "final"):
        types = list(
            ProcessEvent.objects.filter(process=process, task_name=name)
            .order_by("seq")
            .values_list("type", flat=True)
        )
        assert types == [EventType.TASK_SCHEDULED, EventType.TASK_STARTED, EventType.TASK_COMPLETED]


def test_a_chained_step_is_one_transaction_with_the_completion_before_it(
    import_definition, system_actor, enqueued
):
    process, ids = start(import_definition, system_actor)
    worker.run_steps(ids["left"])

    with CaptureQueriesContext(connection) as q:
        worker.run_steps(ids["right"])

    # (inside the test's transaction each engine transaction is a savepoint)
    transactions = [x for x in q.captured_queries if x["sql"].startswith("SAVEPOINT")]
    # right: its lease, then one transaction per completion (right+join lease, join+final
    # lease, final): 4 transactions for 3 steps, against 6 through the queue
    assert len(transactions) == 4
    statements = [
        x["sql"]
        for x in q.captured_queries
        if x["sql"].split(" ", 1)[0] not in ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE")
    ]
    assert len(statements) <= 6 * 3


def test_a_chained_step_holds_a_lease_and_fails_like_any_other(
    import_definition, system_actor, enqueued, handlers
):
    handlers.add("e.join")
    process, ids = start(import_definition, system_actor)
    worker.run_steps(ids["left"])

    assert worker.run_steps(ids["right"]) == "attempt failed"

    join = process.tasks.get(name="join")
    assert join.state == TaskState.SCHEDULED and join.attempts == 1
    assert join.scheduled_at is not None  # waits for its back-off, as after a queued attempt
    assert "e.join is down" in join.last_error
    assert task_states(process)["final"] == "pending"


def test_without_eager_dispatch_the_next_step_goes_through_the_queue(
    import_definition, system_actor, enqueued, settings, django_capture_on_commit_callbacks
):
    settings.FLOWDESK_EAGER_STEPS = False
    process, ids = start(import_definition, system_actor)
    worker.run_steps(ids["left"])
    with django_capture_on_commit_callbacks(execute=True):
        worker.run_steps(ids["right"])

    assert task_states(process)["join"] == "scheduled"
    assert enqueued == [ids["join"]]


def test_a_step_longer_than_the_workers_budget_is_queued_instead(
    import_definition, system_actor, enqueued, settings, django_capture_on_commit_callbacks
):
    # the final step's timeout does not fit in what django-q2 leaves this queue task
    settings.FLOWDESK_EAGER_SECONDS = 5
    data = four_step(final_timeout="PT10M")
    process, ids = start(import_definition, system_actor, data)
    worker.run_steps(ids["left"])
    with django_capture_on_commit_callbacks(execute=True):
        worker.run_steps(ids["right"])

    states = task_states(process)
    assert states["join"] == "completed" and states["final"] == "scheduled"
    assert enqueued == [ids["final"]]
