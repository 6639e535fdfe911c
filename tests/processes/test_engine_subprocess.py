"""Call activities: a PROCESS task starts child processes, waits, maps their results back;
cancellation and incidents cross between parent and children."""

import json
import threading

import pytest
from django.db import connection

from processes import engine, history, steps, worker
from processes.errors import Conflict
from processes.events import Actor
from processes.models import EventType, ProcessEvent, ProcessInstance, TaskState
from processes.spec import parse
from tests.conftest import DEFINITIONS
from tests.factories import UserFactory, definition_data

pytestmark = pytest.mark.django_db(transaction=True)
SYSTEM = Actor.system("test")


def child_data(version_note=""):
    return definition_data(
        "child",
        description=version_note,
        stages=[("WORK", [{"task_name": "work", "handler": "test_sub.work"}])],
    )


def parent_data(**call):
    return definition_data(
        "parent",
        stages=[
            (
                "CALL",
                [
                    {
                        "task_name": "each",
                        "task_type": "PROCESS",
                        "process": {
                            "definition": "child",
                            "for_each": "numbers",
                            "input": {"n": "item", "period": "period"},
                            "output": {"double": "work.double"},
                            **call,
                        },
                    }
                ],
            ),
            ("END", [{"task_name": "end", "handler": "flowdesk.noop"}]),
        ],
    )


@pytest.fixture
def work():
    """The child's step: doubles ``n``, or fails while ``failing``."""
    state = {"failing": False}

    def handler(ctx):
        if state["failing"]:
            raise steps.PermanentStepError("no")
        return {"double": ctx.variables["n"] * 2, "period": ctx.variables.get("period")}

    steps.registry.register("test_sub.work", handler)
    yield state
    steps.registry.unregister("test_sub.work")


@pytest.fixture
def defs(import_definition, work):
    return import_definition(child_data()), import_definition(parent_data())


def start(numbers, key="RUN-1"):
    return engine.process_start(
        definition_key="parent",
        business_key=key,
        input={"numbers": numbers, "period": "2026-11"},
        actor=SYSTEM,
    ).process


def run_steps(*processes):
    for process in processes:
        for task in process.tasks.filter(state=TaskState.SCHEDULED).exclude(handler=""):
            worker.run_step(task.pk)


def children_of(process):
    return list(ProcessInstance.objects.filter(parent=process).order_by("business_key"))


def test_one_child_per_item_then_the_results_come_back(defs):
    parent = start([1, 2, 3])
    kids = children_of(parent)
    assert [k.business_key for k in kids] == ["RUN-1:each:0", "RUN-1:each:1", "RUN-1:each:2"]
    assert [k.variables for k in kids] == [{"n": n, "period": "2026-11"} for n in (1, 2, 3)]
    each = parent.tasks.get(name="each")
    assert each.state == TaskState.RUNNING
    assert all(k.parent_task_id == each.pk for k in kids)
    started = ProcessEvent.objects.get(process=parent, type=EventType.SUBPROCESS_STARTED)
    assert started.data["definition"] == "child v1" and len(started.data["children"]) == 3
    # when two children finish, the parent still waits
    run_steps(kids[0], kids[1])
    parent.refresh_from_db()
    assert parent.tasks.get(name="each").state == TaskState.RUNNING
    # and when the last one does, the results are mapped back and the parent goes on
    run_steps(kids[2])
    parent.refresh_from_db()
    assert parent.current_stage == "END"
    result = parent.variables["each"]["children"]
    assert [(r["business_key"], r["double"]) for r in result] == [
        ("RUN-1:each:0", 2),
        ("RUN-1:each:1", 4),
        ("RUN-1:each:2", 6),
    ]
    run_steps(parent)
    parent.refresh_from_db()
    assert parent.state == "completed"
    assert history.differences(parent) == []
    assert (
        ProcessEvent.objects.filter(process=parent, type=EventType.SUBPROCESS_FINISHED).count() == 3
    )


def test_a_single_child_without_for_each_and_a_pinned_version(import_definition, work):
    import_definition(child_data("v1"))
    import_definition(child_data("v2"))
    data = parent_data(version=1)
    del data["stages"][0]["tasks"][0]["process"]["for_each"]
    data["stages"][0]["tasks"][0]["process"]["input"] = {"n": "numbers.first"}
    import_definition(data)
    parent = start({"first": 21})
    [kid] = children_of(parent)
    assert (kid.definition.version, kid.business_key, kid.variables) == (1, "RUN-1:each", {"n": 21})
    run_steps(kid)
    parent.refresh_from_db()
    assert parent.variables["each"] == {
        "process": str(kid.pk),
        "business_key": "RUN-1:each",
        "double": 42,
    }


def test_an_empty_list_completes_the_task_at_once(defs):
    parent = start([])
    parent.refresh_from_db()
    assert parent.variables["each"] == {"children": []} and parent.current_stage == "END"


@pytest.mark.parametrize(
    "input,error",
    [
        ({"numbers": "x"}, "for_each: variable 'numbers' is not a list"),
    ],
)
def test_a_bad_list_opens_an_incident_on_the_parent(defs, input, error):
    parent = engine.process_start(
        definition_key="parent", business_key="BAD", input=input, actor=SYSTEM
    ).process
    parent.refresh_from_db()
    each = parent.tasks.get(name="each")
    assert (parent.state, each.state, each.last_error) == ("failed", "failed", error)


def test_an_unknown_child_definition_opens_an_incident(import_definition, work):
    import_definition(parent_data(definition="missing"))
    parent = start([1])
    parent.refresh_from_db()
    assert parent.state == "failed"
    assert parent.tasks.get(name="each").last_error == "no published definition 'missing'"


def test_a_child_incident_reaches_the_parent_and_its_resolution_too(defs, work):
    parent = start([1, 2])
    kids = children_of(parent)
    work["failing"] = True
    run_steps(kids[0])
    parent.refresh_from_db()
    each = parent.tasks.get(name="each")
    assert (parent.state, each.state) == ("failed", "failed")
    assert each.last_error == "child child:RUN-1:each:0 has an incident"
    # the operator fixes the child: the parent waits again, then completes
    work["failing"] = False
    failed = kids[0].tasks.get(name="work")
    engine.task_retry(task_id=failed.pk, actor=SYSTEM)
    parent.refresh_from_db()
    assert (parent.state, parent.tasks.get(name="each").state) == ("running", "running")
    run_steps(kids[0], kids[1])
    parent.refresh_from_db()
    assert parent.current_stage == "END"
    assert history.differences(parent) == []


def test_cancelling_the_parent_cancels_its_children(defs):
    parent = start([1, 2])
    kids = children_of(parent)
    run_steps(kids[0])  # one child is done already
    engine.process_cancel(process_id=parent.pk, actor=SYSTEM, reason="wrong month")
    states = {k.business_key: k.state for k in children_of(parent)}
    assert states == {"RUN-1:each:0": "completed", "RUN-1:each:1": "cancelled"}
    parent.refresh_from_db()
    assert parent.state == "cancelled"


def test_a_cancelled_child_is_an_incident_of_the_parent(defs):
    parent = start([1, 2])
    kid = children_of(parent)[1]
    engine.process_cancel(process_id=kid.pk, actor=SYSTEM, reason="left the company")
    parent.refresh_from_db()
    each = parent.tasks.get(name="each")
    assert (parent.state, each.state) == ("failed", "failed")
    assert each.last_error == "child child:RUN-1:each:1 was cancelled"


def test_the_api_and_the_admin_link_parent_and_children(defs, client, admin_client):
    parent = start([1])
    [kid] = children_of(parent)
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(root)
    detail = client.get(f"/api/processes/{kid.pk}/").json()
    assert detail["parent"] == str(parent.pk) and detail["parent_task"] == "each"
    listed = client.get(f"/api/processes/?parent={parent.pk}").json()["results"]
    assert [p["id"] for p in listed] == [str(kid.pk)]
    page = admin_client.get(f"/admin/processes/processinstance/{parent.pk}/change/")
    assert f"/admin/processes/processinstance/{kid.pk}/change/" in page.content.decode()
    page = admin_client.get(f"/admin/processes/processinstance/{kid.pk}/change/")
    assert f"/admin/processes/processinstance/{parent.pk}/change/" in page.content.decode()


def test_the_monthly_salary_run_definition_starts_one_salary_per_employee(import_definition):
    import_definition(json.loads((DEFINITIONS / "salary.json").read_text()))
    run = import_definition(json.loads((DEFINITIONS / "salary_run.json").read_text()))
    parent = engine.process_start(
        definition=run,
        business_key="RUN-2026-11",
        input={"period": "2026-11", "employees": ["E001", "E002"]},
        actor=SYSTEM,
    ).process
    kids = children_of(parent)
    assert [(k.definition_key, k.business_key, k.variables) for k in kids] == [
        ("salary", "SAL-2026-11-E001", {"employee_id": "E001", "period": "2026-11"}),
        ("salary", "SAL-2026-11-E002", {"employee_id": "E002", "period": "2026-11"}),
    ]
    assert {t.name: t.state for t in kids[0].tasks.all()}["bonus"] == "scheduled"


@pytest.mark.parametrize(
    "process,path",
    [
        (None, "process"),
        ({"definition": "BAD KEY"}, "process.definition"),
        ({"definition": "child", "version": 0}, "process.version"),
        ({"definition": "child", "for_each": "a b"}, "process.for_each"),
        ({"definition": "child", "input": {"n": 3}}, "process.input.n"),
        ({"definition": "child", "business_key": "K-{a b}"}, "process.business_key"),
        ({"definition": "child", "extra": 1}, "process.extra"),
    ],
)
def test_a_bad_process_task_is_reported_at_its_path(process, path):
    data = parent_data()
    task = data["stages"][0]["tasks"][0]
    if process is None:
        del task["process"]
    else:
        task["process"] = process
    spec, errors = parse(data, known_handlers={"flowdesk.noop"})
    assert spec is None
    assert any(e.path == f"stages[0].tasks[0].{path}" for e in errors), [str(e) for e in errors]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL")
def test_a_child_finishing_while_the_parent_is_cancelled_never_deadlocks(defs):
    """Race the last child's completion against the parent's cancellation, many times: one of
    them wins, the other's effect is consistent, no child is left running."""
    outcomes = []
    for round in range(12):
        parent = start([round], key=f"RACE-{round}")
        [kid] = children_of(parent)
        work_task = kid.tasks.get(name="work")
        engine.task_start(task_id=work_task.pk, actor=Actor.worker())
        barrier = threading.Barrier(2)
        errors = []

        def finish(task_id=work_task.pk, barrier=barrier, errors=errors):
            try:
                barrier.wait()
                engine.task_complete(task_id=task_id, actor=Actor.worker(), result={"double": 0})
            except Conflict as exc:  # the child was cancelled first: a clear refusal
                outcomes.append(("too late", str(exc)))
            except Exception as exc:  # noqa: BLE001 - recorded and asserted below
                errors.append(exc)
            finally:
                connection.close()

        def cancel(parent_id=parent.pk, barrier=barrier, errors=errors):
            try:
                barrier.wait()
                engine.process_cancel(process_id=parent_id, actor=SYSTEM, reason="race")
            except Conflict as exc:  # the parent completed first: a clear refusal
                outcomes.append(("refused", str(exc)))
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=finish), threading.Thread(target=cancel)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        parent.refresh_from_db()
        kid.refresh_from_db()
        each = parent.tasks.get(name="each")
        outcomes.append((parent.state, each.state, kid.state))
        assert kid.state in ("completed", "cancelled")
        assert parent.state in ("cancelled", "running", "completed")
        if parent.state == "cancelled":
            assert each.state in ("cancelled", "completed")
        else:  # the child won: the result came back before the cancel looked
            assert kid.state == "completed" and each.state == "completed"
    print("race outcomes:", outcomes)
    assert all(o[0] != "running" or o[1] == "completed" for o in outcomes if len(o) == 3)


def test_a_parent_cancelled_after_its_last_child_finished_keeps_the_result(defs):
    """The other order of the race above: the child wins, its result is the parent's."""
    parent = start([5], key="ORDER-2")
    [kid] = children_of(parent)
    run_steps(kid)
    engine.process_cancel(process_id=parent.pk, actor=SYSTEM, reason="late")
    parent.refresh_from_db()
    kid.refresh_from_db()
    assert (parent.state, kid.state) == ("cancelled", "completed")
    assert parent.tasks.get(name="each").state == "completed"
    assert parent.variables["each"]["children"][0]["double"] == 10


def test_a_batch_of_parents_starts_their_children_too(defs):
    results = engine.process_start_batch(
        definition=defs[1],
        items=[{"business_key": f"B{i}", "input": {"numbers": [i, i + 1]}} for i in range(3)],
        actor=SYSTEM,
    )
    assert [r.outcome for r in results] == ["created"] * 3
    for r in results:
        parent = ProcessInstance.objects.get(pk=r.process_id)
        assert len(children_of(parent)) == 2
        assert parent.tasks.get(name="each").state == TaskState.RUNNING


def test_children_lost_with_the_process_that_scheduled_them_are_started_by_the_sweep(
    defs, monkeypatch, clock, settings
):
    # given a parent whose after-commit spawn never ran (its web process died right after commit)
    from processes.engine import subprocess as engine_subprocess

    monkeypatch.setattr(engine_subprocess, "spawn_after_commit", lambda task_ids: None)
    parent = start([1, 2])
    each = parent.tasks.get(name="each")
    assert children_of(parent) == [] and each.state == TaskState.SCHEDULED
    assert each.wake_at is not None  # a recovery timer

    # when the sweep runs before that timer is due, nothing happens; once due, the children start
    worker.sweep_timers()
    assert children_of(parent) == []
    clock.advance(settings.FLOWDESK_REENQUEUE_AFTER + 1)
    assert worker.sweep_timers() == {"spawned": 1}
    kids = children_of(parent)
    assert [k.business_key for k in kids] == ["RUN-1:each:0", "RUN-1:each:1"]
    each.refresh_from_db()
    assert each.state == TaskState.RUNNING and each.wake_at is None  # the timer is done

    # and a second sweep later starts nothing twice
    clock.advance(settings.FLOWDESK_REENQUEUE_AFTER + 1)
    worker.sweep_timers()
    assert len(children_of(parent)) == 2
    run_steps(*kids)
    parent.refresh_from_db()
    assert parent.tasks.get(name="each").state == TaskState.COMPLETED


def test_children_that_complete_as_they_start_complete_the_parents_task(import_definition, work):
    # given a child whose only task is skipped by its condition: it completes as it starts
    import_definition(
        definition_data(
            "child",
            stages=[
                (
                    "WORK",
                    [
                        {
                            "task_name": "work",
                            "handler": "test_sub.work",
                            "condition": {"var": "n", "op": "gt", "value": 100},
                        }
                    ],
                )
            ],
        )
    )
    import_definition(parent_data())
    parent = start([1, 2])
    kids = children_of(parent)
    assert [k.state for k in kids] == ["completed", "completed"]
    # then the parent does not wait for news that will never come
    parent.refresh_from_db()
    assert parent.tasks.get(name="each").state == TaskState.COMPLETED
    finished = ProcessEvent.objects.filter(process=parent, type=EventType.SUBPROCESS_FINISHED)
    assert finished.count() == 2
