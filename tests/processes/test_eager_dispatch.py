"""Eager dispatch: the worker whose completion makes a service step ready leases it in the same
transaction and runs it next; every step is still leased, committed and recorded."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from processes import engine, queue, worker
from processes.models import EventType, ProcessEvent, TaskState
from processes.steps import RetryableStepError, registry
from tests.conftest import record_steps, task_states
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
    record_steps(monkeypatch, lambda task_id, timeout: found.append(task_id))
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


def transactions_and_statements(captured) -> tuple[int, int]:
    """(engine transactions, SQL statements besides transaction control) of a capture; inside
    the test's transaction each engine transaction is a savepoint."""
    sql = [x["sql"] for x in captured.captured_queries]
    control = ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE")
    return (
        sum(1 for x in sql if x.startswith("SAVEPOINT")),
        sum(1 for x in sql if x.split(" ", 1)[0] not in control),
    )


def assert_leased_and_recorded(process, *names):
    """Each step was scheduled, started (leased) and completed, each in its history."""
    for name in names:
        types = list(
            ProcessEvent.objects.filter(process=process, task_name=name)
            .order_by("seq")
            .values_list("type", flat=True)
        )
        assert types == [EventType.TASK_SCHEDULED, EventType.TASK_STARTED, EventType.TASK_COMPLETED]


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
    assert_leased_and_recorded(process, "join", "final")


def test_a_chained_step_is_one_transaction_with_the_completion_before_it(
    import_definition, system_actor, enqueued
):
    process, ids = start(import_definition, system_actor)
    worker.run_steps(ids["left"])

    with CaptureQueriesContext(connection) as q:
        worker.run_steps(ids["right"])

    transactions, statements = transactions_and_statements(q)
    # right: its lease, then one transaction per completion (right+join lease, join+final
    # lease, final): 4 transactions for 3 steps, against 6 through the queue
    assert transactions == 4
    assert statements <= 6 * 3


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


# --- batch dispatch: the steps one transaction makes ready go as one message ---------------------


def test_parallel_branches_go_to_the_queue_as_one_message(
    import_definition, system_actor, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(queue, "enqueue", lambda func, *args, **kw: sent.append((func, args, kw)))
    import_definition(four_step())
    with django_capture_on_commit_callbacks(execute=True):
        process = engine.process_start(
            definition_key="eager", business_key="E-1", actor=system_actor
        ).process

    ids = {t.name: t.pk for t in process.tasks.all()}
    [(func, args, kw)] = sent
    assert func == queue.RUN_STEP and sorted(args) == sorted([ids["left"], ids["right"]])
    scheduled = dict(
        ProcessEvent.objects.filter(process=process, type=EventType.TASK_SCHEDULED).values_list(
            "task_id", "pk"
        )
    )
    assert kw["causes"] == [scheduled[task_id] for task_id in args]  # each its own cause


def test_a_batch_is_leased_in_one_transaction_and_reported_in_one(
    import_definition, system_actor, enqueued
):
    process, ids = start(import_definition, system_actor)

    with CaptureQueriesContext(connection) as q:
        assert worker.run_steps(ids["left"], ids["right"]) == "completed"

    process.refresh_from_db()
    assert process.state == "completed" and enqueued == []
    assert sorted(c[0] for c in CALLS[:2]) == ["e.left", "e.right"]  # side by side, then
    assert [c[0] for c in CALLS[2:]] == ["e.join", "e.final"]  # the join saw both branches
    assert CALLS[2][2] == ["left", "right"]
    transactions, statements = transactions_and_statements(q)
    # left+right leased (1), both reported with the join's lease (1), the join with the final
    # step's lease (1), the final step (1): one commit per step
    assert transactions == 4
    assert statements <= 6 * 4
    assert_leased_and_recorded(process, "left", "right", "join", "final")


def test_each_outcome_of_a_batch_counts_on_its_own(import_definition, system_actor, handlers):
    handlers.add("e.right")  # right fails (its only attempt), left completes, in one report
    process, ids = start(import_definition, system_actor)
    scheduled = dict(
        ProcessEvent.objects.filter(process=process, type=EventType.TASK_SCHEDULED).values_list(
            "task_id", "pk"
        )
    )
    causes = [scheduled[ids["left"]], scheduled[ids["right"]]]  # as the batch's message carries

    assert worker.run_steps(ids["left"], ids["right"], causes=causes) == "attempt failed"

    states = task_states(process)
    assert states["left"] == "completed" and states["right"] == "failed"
    assert states["join"] == "pending"
    process.refresh_from_db()
    assert process.state == "failed"  # the incident, as after a step reported alone
    right = process.tasks.get(name="right")
    assert right.attempts == 1 and "e.right is down" in right.last_error
    # what each step appended is caused by that step's own task_scheduled
    for name in ("left", "right"):
        events = {e.type: e for e in ProcessEvent.objects.filter(process=process, task_name=name)}
        own = events[EventType.TASK_SCHEDULED].pk
        last = events.get(EventType.TASK_COMPLETED) or events[EventType.TASK_FAILED]
        assert events[EventType.TASK_STARTED].caused_by == own
        assert last.caused_by == own


def test_a_slow_step_does_not_hold_back_the_report_of_a_fast_one(
    import_definition, system_actor, enqueued, monkeypatch
):
    import time

    def slow(ctx):
        time.sleep(0.5)
        return {"by": "slow"}

    registry.unregister("e.right")
    registry.register("e.right", slow)
    process, ids = start(import_definition, system_actor)

    assert worker.run_steps(ids["left"], ids["right"]) == "completed"

    done = dict(
        ProcessEvent.objects.filter(process=process, type=EventType.TASK_COMPLETED).values_list(
            "task_name", "created_at"
        )
    )
    assert (done["right"] - done["left"]).total_seconds() > 0.3  # left recorded as it finished
    assert task_states(process)["final"] == "completed"
