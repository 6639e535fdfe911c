"""Batch dispatch composes with batch start: the steps of different processes never share one
queue message (a worker may still take several messages together: group commit), and a worker
never drops steps it was given; one process's steps still go together (``FLOWDESK_STEP_BATCH``)."""

import json
from collections import defaultdict

import pytest
from django.utils.module_loading import import_string

import tests.e2e_steps  # noqa: F401  (registers e2e.work here too, so the definition validates)
from processes import engine, queue
from processes.events import Actor
from processes.models import TaskInstance, TaskState
from tests.conftest import wait_for
from tests.factories import definition_data

SYSTEM = Actor.system("test")


def two_steps(key="monthly", handler="flowdesk.noop", **config):
    """Two service steps side by side: both ready at the start."""
    return definition_data(
        key,
        stages=[
            (
                "CALC",
                [
                    {"task_name": "base", "handler": handler, **config},
                    {"task_name": "bonus", "handler": handler, **config},
                ],
            )
        ],
    )


@pytest.fixture
def messages(monkeypatch):
    """Each queue message of steps, as the list of task ids it carries (nothing is sent)."""
    sent: list[list[int]] = []
    monkeypatch.setattr(queue, "enqueue_step", lambda task_id, timeout: sent.append([task_id]))
    monkeypatch.setattr(queue, "enqueue_batch", lambda steps: sent.append([s[0] for s in steps]))
    return sent


def process_of(task_ids):
    return set(TaskInstance.objects.filter(pk__in=task_ids).values_list("process_id", flat=True))


@pytest.mark.django_db
def test_steps_of_many_processes_go_one_process_per_message(messages, settings):
    settings.FLOWDESK_STEP_BATCH = 8
    # ten steps of p1, interleaved with one step each of p2 and p3
    steps = [(i, 60, None, "p1") for i in range(1, 11)]
    steps.insert(3, (20, 60, None, "p2"))
    steps.insert(6, (30, 60, None, "p3"))
    queue.enqueue_steps(steps)
    assert messages == [[1, 2, 3, 4, 5, 6, 7, 8], [9, 10], [20], [30]]
    # a message queued by an earlier release names no process: each of its steps goes alone
    messages.clear()
    queue.enqueue_steps([(1, 60, None), (2, 60, None)])
    assert messages == [[1], [2]]


@pytest.mark.django_db
def test_a_batch_start_queues_each_process_steps_together_and_apart_from_the_others(
    import_definition, django_capture_on_commit_callbacks, messages, monkeypatch
):
    definition = import_definition(two_steps())
    jobs = []
    monkeypatch.setattr(
        queue, "enqueue", lambda func, *args, **options: jobs.append((func, args)) or True
    )
    with django_capture_on_commit_callbacks(execute=True):
        engine.process_start_batch(
            definition=definition,
            items=[{"business_key": f"K{i}"} for i in range(40)],
            actor=SYSTEM,
        )
    # the worker that runs the chunk's job queues the steps
    [(func, args)] = jobs
    import_string(func)(*args)
    assert len(messages) == 40
    for ids in messages:
        assert len(ids) == 2 and len(process_of(ids)) == 1  # one process's two steps, together


@pytest.mark.django_db
def test_a_worker_given_steps_of_two_processes_leases_them_all_in_one_commit(
    import_definition, django_capture_on_commit_callbacks, messages
):
    import_definition(two_steps())
    first, second = (
        engine.process_start(definition_key="monthly", business_key=key, actor=SYSTEM).process
        for key in ("A", "B")
    )
    messages.clear()
    a_ids = list(first.tasks.order_by("id").values_list("id", flat=True))
    b_ids = list(second.tasks.order_by("id").values_list("id", flat=True))
    # when one call (a message of an earlier release, or a worker's group commit) mixes them
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        leases = engine.tasks_start(task_ids=[a_ids[0], b_ids[0], a_ids[1], b_ids[1]], actor=SYSTEM)
    # then every step is leased to this worker, each one once, and none is queued again
    assert sorted(lease.task_id for lease in leases) == sorted(a_ids + b_ids)
    assert messages == [] and callbacks == []
    for process in (first, second):
        assert set(process.tasks.values_list("state", flat=True)) == {TaskState.RUNNING}
        started = process.events.filter(type="task_started").values_list("task_id", flat=True)
        assert sorted(started) == sorted(process.tasks.values_list("id", flat=True))


# --- on a running cluster -------------------------------------------------------------------------


@pytest.fixture(params=["orm", "redis"])
def broker(request):
    if request.param == "redis":
        request.getfixturevalue("redis_url")
    return request.param


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_batch_of_500_starts_every_process_first_steps_within_seconds(
    broker, qcluster_factory, import_definition, tmp_path, settings
):
    # given a running cluster, and steps that nobody would queue again for 10 minutes
    env = {
        "FLOWDESK_STEP_MODULES": "tests.e2e_steps",
        "E2E_DIR": str(tmp_path),
        "FLOWDESK_Q_WORKERS": "2",
        "FLOWDESK_REENQUEUE_AFTER": "600",
        "FLOWDESK_STEP_BATCH": "8",
    }
    settings.FLOWDESK_REENQUEUE_AFTER = 600
    import_definition(two_steps(handler="e2e.work", seconds=0))
    cluster = qcluster_factory(broker=broker, **env)
    # when a batch of 500 is started (its chunks' jobs go through the cluster's broker)
    cluster.manage(
        "shell",
        "-c",
        "from processes import engine; from processes.events import Actor; "
        "from processes.models import ProcessDefinition; "
        "d = ProcessDefinition.objects.get(key='monthly'); "
        "engine.process_start_batch(definition=d, "
        "items=[{'business_key': f'M{i:03d}'} for i in range(500)], "
        "actor=Actor.system('test'))",
    )
    waiting = TaskInstance.objects.filter(process__definition_key="monthly")
    assert waiting.count() == 1000
    # then every process's first steps start within seconds, not at the sweep
    wait_for(
        lambda: not waiting.filter(state=TaskState.SCHEDULED).exists(),
        timeout=30,
        message=f"steps still waiting for the sweep\n{cluster.output()[-3000:]}",
    )

    # and each process's two steps still went as one message, to one worker process (a step is
    # leased before its handler runs: the last group's calls may follow the leases by a moment)
    def logged_calls():
        return [json.loads(line) for line in (tmp_path / "calls.log").read_text().splitlines()]

    wait_for(lambda: len(logged_calls()) >= 1000, timeout=30, message="every step's call")
    workers = defaultdict(set)
    for call in logged_calls():
        workers[call["key"].split(":")[0]].add(call["pid"])
    assert len(workers) == 500 and all(len(pids) == 1 for pids in workers.values())
