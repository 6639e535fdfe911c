"""Group commit: a worker takes the step messages waiting behind its own (Redis) and leases,
reports and commits the steps of several processes together, each process locked, each step
still leased, committed and recorded with its own cause and correlation id."""

import os
import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django_q.conf import Conf

from processes import context, engine, queue, worker
from processes.events import Actor
from processes.models import EventType, ProcessEvent, ProcessInstance, TaskState
from processes.steps import registry
from tests.conftest import task_states
from tests.factories import definition_data

SYSTEM = Actor.system("test")
CALLS: list = []


@pytest.fixture(autouse=True)
def handlers():
    CALLS.clear()
    for name in ("g.work", "g.slow"):
        registry.register(name, lambda ctx, name=name: CALLS.append(ctx.task_name) or {"ok": 1})
    yield
    for name in ("g.work", "g.slow"):
        registry.unregister(name)


def flow(key="grouped", timeout="PT30S"):
    """left ‖ right, then join: two service steps ready at the start, one after them."""
    step = {"handler": "g.work", "timeout": timeout}
    return definition_data(
        key,
        stages=[
            (
                "CALC",
                [
                    {"task_name": "left", **step},
                    {"task_name": "right", **step},
                    {"task_name": "join", **step, "parent_task": ["left", "right"]},
                ],
            )
        ],
    )


def first_steps(process) -> list[int]:
    return list(process.tasks.filter(state="scheduled").order_by("id").values_list("id", flat=True))


def start(key, definition_key="grouped") -> ProcessInstance:
    return engine.process_start(
        definition_key=definition_key, business_key=key, actor=SYSTEM
    ).process


@pytest.mark.django_db
def test_one_report_of_two_processes_is_one_lock_one_write_one_commit(
    postgres, import_definition, django_capture_on_commit_callbacks
):
    import_definition(flow())
    a, b = start("A"), start("B")
    leases = engine.tasks_start(task_ids=first_steps(a) + first_steps(b), actor=SYSTEM)
    outcomes = [engine.StepOutcome(lease, result={"n": 1}) for lease in leases]
    with CaptureQueriesContext(connection) as queries:
        chained = engine.steps_report(outcomes=outcomes, actor=SYSTEM, eager_within=60)
    sql = [q["sql"].split(" ", 1)[0] for q in queries.captured_queries]
    # the lock of both processes, the read of their tasks, the one write (in one transaction)
    assert [s for s in sql if s not in ("SAVEPOINT", "RELEASE")] == ["SELECT", "SELECT", "WITH"]
    # each process's join was made ready and leased to this worker, in the same commit
    joins = {a.tasks.get(name="join").pk, b.tasks.get(name="join").pk}
    assert {lease.task_id for lease in chained} == joins
    for process in (a, b):
        assert task_states(process) == {
            "left": "completed",
            "right": "completed",
            "join": "running",
        }
        seqs = list(process.events.order_by("seq").values_list("seq", flat=True))
        assert seqs == list(range(1, len(seqs) + 1))  # each process's own sequence, no gap


@pytest.mark.django_db
def test_each_process_keeps_its_own_cause_and_correlation(postgres, import_definition):
    import_definition(flow())
    a, b = start("A"), start("B")
    ids = first_steps(a) + first_steps(b)
    scheduled = dict(
        ProcessEvent.objects.filter(type=EventType.TASK_SCHEDULED, task_id__in=ids).values_list(
            "task_id", "pk"
        )
    )
    with context.bound(correlation="req-a"):
        leases = engine.tasks_start(
            task_ids=ids,
            actor=SYSTEM,
            causes=[scheduled[i] for i in ids],
            correlations=[None, None, "req-b", "req-b"],
        )
    with context.bound(correlation="req-a"):
        engine.steps_report(
            outcomes=[engine.StepOutcome(x, result={}) for x in leases], actor=SYSTEM
        )
    for process, correlation in ((a, "req-a"), (b, "req-b")):
        started = process.events.filter(type__in=["task_started", "task_completed"])
        assert {e.correlation_id for e in started} == {correlation}
        for event in started:
            assert event.caused_by == scheduled[event.task_id]


@pytest.fixture
def redis_queue(redis_url, monkeypatch, settings):
    """The queue on Redis (as production's scale-out), a list of this test's own."""
    monkeypatch.setattr(Conf, "BROKER_CLASS", "processes.supervisor.RedisBroker")
    monkeypatch.setattr(Conf, "REDIS", redis_url)
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "CLUSTER_NAME", f"grouptest{os.getpid()}")
    settings.FLOWDESK_STEP_GROUP = 4
    settings.FLOWDESK_STEP_BATCH = 8
    found = queue.broker()
    found.delete_queue()
    yield found
    found.delete_queue()


def queued(broker) -> list[tuple]:
    from django_q.signing import SignedPackage

    raw = broker.connection.lrange(broker.list_key, 0, -1)
    return [(t["func"], tuple(t["args"])) for t in map(SignedPackage.loads, raw)]


@pytest.mark.django_db(transaction=True)
def test_a_worker_runs_the_messages_waiting_behind_its_own(
    postgres, redis_queue, import_definition
):
    # given five processes started, their steps' messages waiting on Redis
    import_definition(flow())
    processes = [start(f"K{i}") for i in range(5)]
    assert len(queued(redis_queue)) == 5
    # when a worker gets the first message (the pusher took it off the list)
    func, args = queued(redis_queue)[0]
    redis_queue.connection.lpop(redis_queue.list_key)
    worker.run_steps(*args, q_timeout=45)
    # then it ran three more messages with it (FLOWDESK_STEP_GROUP=4), each process to its end
    done = [
        p
        for p in processes
        if task_states(p) == dict.fromkeys(["left", "right", "join"], "completed")
    ]
    assert len(done) == 4 and len(CALLS) == 12
    # and the fifth message still waits, untouched
    [(func, rest)] = queued(redis_queue)
    assert func == queue.RUN_STEP and set(rest) == set(first_steps(processes[4]))


@pytest.mark.django_db(transaction=True)
def test_what_is_not_a_step_or_needs_longer_goes_back_in_its_order(
    postgres, redis_queue, import_definition, settings
):
    settings.FLOWDESK_STEP_GROUP = 5  # four more messages looked at
    import_definition(flow())
    import_definition(flow(key="patient", timeout="PT10M"))
    quick = start("Q1")
    long = start("L1", definition_key="patient")
    queue.enqueue("math.floor", 1.5)  # another kind of work
    quick2 = start("Q2")
    before = queued(redis_queue)
    taken = queue.take_queued_steps(room=8, q_timeout=45)
    # the steps that fit in the worker's own time are taken; the rest is back, in order
    assert [set(t.task_ids) for t in taken] == [set(first_steps(quick)), set(first_steps(quick2))]
    assert queued(redis_queue) == [before[1], before[2]]
    assert queue.take_queued_steps(room=8, q_timeout=None) == []  # an older message's worker
    assert long.state == "running"


@pytest.mark.django_db(transaction=True)
def test_no_more_steps_than_the_worker_runs_at_once(postgres, redis_queue, import_definition):
    import_definition(flow())
    for i in range(4):
        start(f"R{i}")
    taken = queue.take_queued_steps(room=3, q_timeout=45)
    assert [len(t.task_ids) for t in taken] == [2]  # a second message would make four
    assert len(queued(redis_queue)) == 3  # the others wait, none lost


@pytest.mark.django_db(transaction=True)
def test_a_group_that_deadlocks_is_leased_one_process_at_a_time(
    postgres, import_definition, caplog
):
    # given two processes, and another transaction that holds the second and then wants the
    # first (as a child locks its parent after itself)
    import_definition(flow())
    a, b = sorted([start("A"), start("B")], key=lambda p: str(p.pk))
    ids = first_steps(a) + first_steps(b)
    held, done = threading.Event(), threading.Event()

    def other():
        try:
            with transaction.atomic():
                ProcessInstance.objects.select_for_update().get(pk=b.pk)
                held.set()
                time.sleep(0.3)  # the group now holds a and waits for b
                ProcessInstance.objects.select_for_update().get(pk=a.pk)
        finally:
            done.set()
            connections.close_all()

    thread = threading.Thread(target=other)
    thread.start()
    held.wait(5)
    # when a worker leases the steps of both together
    leases = engine.tasks_start(task_ids=ids, actor=SYSTEM)
    thread.join(10)
    # then PostgreSQL stopped the group (it waited first), which went one process at a time,
    # and every step is leased once
    assert "group commit of 2 processes deadlocked" in caplog.text
    assert sorted(lease.task_id for lease in leases) == sorted(ids)
    for process in (a, b):
        assert set(process.tasks.filter(pk__in=ids).values_list("state", flat=True)) == {
            TaskState.RUNNING
        }
