"""Separation of duties and "a business key runs once" hold when two OS processes race on
PostgreSQL."""

import multiprocessing

import pytest

from processes import engine
from processes.models import ProcessInstance, TaskInstance
from tests.conftest import subprocess_env
from tests.factories import UserFactory, definition_data
from tests.processes.concurrency_worker import decide_tasks, start_processes

REPETITIONS = 40
pytestmark = pytest.mark.django_db(transaction=True)


def race(target, args_per_child, n_results):
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    url = subprocess_env()["DATABASE_URL"]
    children = [
        ctx.Process(target=target, args=(url, *args, barrier, results)) for args in args_per_child
    ]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=180) for _ in range(n_results)]
    for child in children:
        child.join(timeout=30)
    return outcomes


def test_one_person_deciding_both_four_eyes_tasks_at_once_gets_exactly_one(
    postgres, import_definition, system_actor
):
    # given processes with two parallel approvals: whoever decides one may not decide the other
    def review(name, other):
        return {
            "task_name": name,
            "task_type": "HUMAN",
            "assigned_to": "reviewers",
            "outcomes": ["approve", "reject"],
            "not_by": [other],
        }

    import_definition(
        definition_data(
            "fourEyes".lower(),
            stages=[("R", [review("first", "second"), review("second", "first")])],
        )
    )
    UserFactory(username="rita", roles=["reviewers"])
    processes = [
        engine.process_start(
            definition_key="foureyes", business_key=f"F{i}", actor=system_actor
        ).process
        for i in range(REPETITIONS)
    ]
    ids = {n: [p.tasks.get(name=n).pk for p in processes] for n in ("first", "second")}

    # when rita decides both of each process at the same instant, from two OS processes
    outcomes = race(
        decide_tasks, [("rita", ids["first"]), ("rita", ids["second"])], 2 * REPETITIONS
    )

    # then for every process exactly one decision counted; the other was told why, in words
    assert [o for o in outcomes if o[0] not in ("ok", "Forbidden")] == []
    for process in processes:
        decided = TaskInstance.objects.filter(process=process, decided_by__username="rita")
        assert decided.count() == 1, process.business_key
    refusals = [o for o in outcomes if o[0] == "Forbidden"]
    assert len(refusals) == REPETITIONS
    assert {o[2] for o in refusals} <= {
        "You decided “first” of this process, so a second person must decide this one (four eyes).",
        "You decided “second” of this process, so a second person must decide this one "
        "(four eyes).",
    }


def test_a_business_key_that_runs_once_is_started_once_by_two_racing_starters(
    postgres, import_definition
):
    import_definition(
        definition_data(
            "once",
            business_key_unique="ever",
            stages=[("S", [{"task_name": "t", "task_queue": "q"}])],
        )
    )
    keys = [f"K{i}" for i in range(REPETITIONS)]
    outcomes = race(start_processes, [("once", keys), ("once", keys)], 2 * REPETITIONS)
    assert [o for o in outcomes if o[0] != "ok"] == []
    for key in keys:
        mine = [o for o in outcomes if o[1] == key]
        assert mine[0][2] == mine[1][2], key  # both got the same instance
        assert sorted(o[3] for o in mine) == [False, True], key  # one created it
        assert ProcessInstance.objects.filter(business_key=key).count() == 1
    # and once it is over, a later start still returns it
    done = ProcessInstance.objects.filter(business_key="K0").first()
    engine.process_cancel(process_id=done.pk, actor=engine.SYSTEM)
    again = race(start_processes, [("once", ["K0"]), ("once", ["K0"])], 2)
    assert {o[2] for o in again} == {str(done.pk)} and not any(o[3] for o in again)
