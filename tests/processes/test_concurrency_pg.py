"""Two OS processes complete the two parallel branches at the same instant: the join starts once
(an external join is scheduled once; an inline join runs once, in one of the two completions)."""

import multiprocessing

import pytest

from processes import engine
from processes.models import EventType, ProcessEvent, TaskInstance
from tests.conftest import subprocess_env
from tests.factories import definition_data
from tests.processes.concurrency_worker import complete_branch

REPETITIONS = 120


JOINS = {
    "external": ({"task_queue": "q"}, "scheduled", EventType.TASK_SCHEDULED),
    "inline": ({"handler": "flowdesk.noop", "inline": True}, "completed", EventType.TASK_COMPLETED),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("join_kind", sorted(JOINS))
def test_simultaneous_branch_completions_start_the_join_exactly_once(
    postgres, import_definition, system_actor, join_kind
):
    join_fields, join_state, join_event = JOINS[join_kind]
    # given many processes, each with two external branches waiting and a join after them
    import_definition(
        definition_data(
            key="race",
            stages=[
                (
                    "S",
                    [
                        {"task_name": "left", "task_queue": "q"},
                        {"task_name": "right", "task_queue": "q"},
                        {"task_name": "join", "parent_task": ["left", "right"], **join_fields},
                    ],
                ),
            ],
        )
    )
    processes = [
        engine.process_start(
            definition_key="race", business_key=f"R{i}", actor=system_actor
        ).process
        for i in range(REPETITIONS)
    ]
    ids = {name: [p.tasks.get(name=name).pk for p in processes] for name in ("left", "right")}

    # when two separate processes complete left and right of each instance at the same moment
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    url = subprocess_env()["DATABASE_URL"]
    workers = [
        ctx.Process(target=complete_branch, args=(url, ids[name], barrier, results))
        for name in ("left", "right")
    ]
    for w in workers:
        w.start()
    outcomes = [results.get(timeout=120) for _ in range(2 * REPETITIONS)]
    for w in workers:
        w.join(timeout=30)

    # then every completion succeeded and every join was scheduled exactly once
    assert [o for o in outcomes if o[0] != "ok"] == []
    joins = TaskInstance.objects.filter(process__in=processes, name="join")
    assert joins.count() == REPETITIONS
    assert set(joins.values_list("state", flat=True)) == {join_state}
    join_events = ProcessEvent.objects.filter(process__in=processes, task_name="join")
    assert list(join_events.values_list("type", flat=True)) == [join_event] * REPETITIONS
    # and the per-instance sequence has no gap and no repeat
    for process in processes[:10]:
        seqs = list(process.events.values_list("seq", flat=True))
        assert seqs == list(range(1, len(seqs) + 1))
