"""Moving running instances to a new version: a plan first, then one instance per transaction,
refused where the plan can't take the instance; raced against a step completing."""

import threading

import pytest
from django.db import connection

from processes import engine, history, worker
from processes.errors import Conflict, Forbidden, InvalidInput
from processes.events import Actor
from processes.models import EventType, ProcessEvent, ProcessInstance, TaskState
from tests.api.conftest import OPERATE, VIEW, grant
from tests.factories import UserFactory, definition_data

pytestmark = pytest.mark.django_db(transaction=True)
SYSTEM = Actor.system("test")
NOOP = "flowdesk.noop"


def v1():
    return definition_data(
        "pay",
        stages=[
            (
                "A",
                [
                    {"task_name": "a1", "handler": NOOP},
                    {"task_name": "a2", "handler": NOOP, "parent_task": ["a1"]},
                ],
            ),
            ("B", [{"task_name": "b1", "handler": NOOP}]),
        ],
    )


def v2():
    return definition_data(
        "pay",
        stages=[
            (
                "A",
                [
                    {"task_name": "a1", "handler": NOOP},
                    {"task_name": "a2x", "handler": NOOP, "parent_task": ["a1"]},
                    {"task_name": "a3", "handler": NOOP, "parent_task": ["a1"]},
                ],
            ),
            ("B", [{"task_name": "b1", "handler": NOOP}]),
        ],
    )


@pytest.fixture
def versions(import_definition):
    old = import_definition(v1())
    started = [
        engine.process_start(definition=old, business_key=f"K{i}", actor=SYSTEM).process
        for i in range(3)
    ]
    new = import_definition(v2())
    return old, new, started


def task(process, name):
    return process.tasks.get(name=name)


def complete(process, name):
    return engine.task_complete(task_id=task(process, name).pk, actor=SYSTEM, result={"ok": 1})


def migrate(**kwargs):
    return engine.migrate_instances(key="pay", from_version=1, to_version=2, actor=SYSTEM, **kwargs)


def test_the_plan_says_what_would_happen_and_moves_nothing(versions):
    old, new, (p0, p1, p2) = versions
    complete(p0, "a1")  # a2 scheduled now
    engine.process_cancel(process_id=p2.pk, actor=SYSTEM)
    results = migrate(mapping={"a2": "a2x"}, dry_run=True)
    plans = {plan.business_key: plan for plan, moved in results}
    assert not any(moved for _, moved in results)
    assert plans["K0"].as_dict() | {"process": None} == {
        "process": None,
        "business_key": "K0",
        "state": "running",
        "ok": True,
        "refusal": "",
        "mapped": [
            {"from": "a1", "to": "a1", "state": "completed"},
            {"from": "a2", "to": "a2x", "state": "scheduled"},
            {"from": "b1", "to": "b1", "state": "pending"},
        ],
        "dropped": [],
        "added": ["a3"],
        "ready": ["a3"],
    }
    assert plans["K1"].ok and plans["K1"].ready == []  # a1 still scheduled: a3 waits for it
    assert set(plans) == {"K0", "K1"}  # the cancelled one is not active: not chosen by default
    assert ProcessInstance.objects.filter(definition=new).count() == 0


def test_applying_moves_each_instance_and_it_runs_on_under_the_new_version(versions):
    old, new, (p0, p1, p2) = versions
    complete(p0, "a1")
    results = migrate(mapping={"a2": "a2x"})
    assert [moved for _, moved in results] == [True, True, True]
    p0.refresh_from_db()
    assert p0.definition_id == new.pk
    assert {t.name: t.state for t in p0.tasks.all()} == {
        "a1": "completed",
        "a2x": "scheduled",
        "a3": "scheduled",  # it became ready
        "b1": "pending",
    }
    event = ProcessEvent.objects.get(process=p0, type=EventType.PROCESS_MIGRATED)
    assert event.data == {
        "from_version": 1,
        "to_version": 2,
        "mapping": {"a1": "a1", "a2": "a2x", "b1": "b1"},
        "dropped": [],
        "added": ["a3"],
    }
    assert history.differences(p0) == []
    for _ in range(3):
        for t in p0.tasks.filter(state=TaskState.SCHEDULED):
            worker.run_step(t.pk)
    p0.refresh_from_db()
    assert p0.state == "completed" and history.differences(p0) == []


def test_instances_the_plan_cant_take_are_refused_and_left_alone(versions):
    old, new, (p0, p1, p2) = versions
    complete(p0, "a1")  # a2 scheduled: without a mapping it would be dropped
    engine.task_start(task_id=task(p1, "a1").pk, actor=Actor.worker())  # a step running
    engine.process_cancel(process_id=p2.pk, actor=SYSTEM)
    results = migrate(instance_ids=[p0.pk, p1.pk, p2.pk])
    refusals = {plan.business_key: plan.refusal for plan, moved in results if not moved}
    assert refusals == {
        "K0": "task 'a2' (scheduled) would be dropped but has a history: map it to a task of "
        "version 2",
        "K1": "step 'a1' is running: migrate once it has finished",
        "K2": "the process is cancelled",
    }
    assert ProcessInstance.objects.filter(definition=new).count() == 0
    assert not ProcessEvent.objects.filter(type=EventType.PROCESS_MIGRATED).exists()


def test_a_pending_task_without_history_may_be_dropped(versions):
    old, new, (p0, p1, p2) = versions
    results = migrate(instance_ids=[p1.pk])  # a2 pending, never scheduled: dropped
    [(plan, moved)] = results
    assert moved and plan.dropped == ["a2"] and plan.added == ["a2x", "a3"]
    p1.refresh_from_db()
    assert sorted(t.name for t in p1.tasks.all()) == ["a1", "a2x", "a3", "b1"]
    assert history.differences(p1) == []


@pytest.mark.parametrize(
    "mapping,field,message",
    [
        ({"zz": "a1"}, "mapping.zz", "no task 'zz' in version 1"),
        ({"a2": "zz"}, "mapping.a2", "no task 'zz' in version 2"),
        ({"a2": "a1"}, "mapping.a2", "'a1' is already the target of 'a1'"),
    ],
)
def test_a_bad_mapping_is_refused_before_anything_moves(versions, mapping, field, message):
    with pytest.raises(InvalidInput) as refused:
        migrate(mapping=mapping)
    assert message in refused.value.fields[field][0]


def test_migrating_needs_publish_and_operate(versions):
    old, new, started = versions
    operator = UserFactory(username="op")
    grant(operator, old, OPERATE)
    with pytest.raises(Forbidden):
        engine.migrate_instances(
            key="pay", from_version=1, to_version=2, actor=Actor.for_user(operator)
        )


def test_the_api_plans_and_applies(versions, client):
    old, new, (p0, p1, p2) = versions
    complete(p0, "a1")
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(root)
    url = "/api/definitions/pay/migrations/"
    body = {"from_version": 1, "to_version": 2, "mapping": {"a2": "a2x"}, "dry_run": True}
    plan = client.post(url, body, content_type="application/json").json()
    assert plan["summary"] == {"planned": 3, "migrated": 0, "refused": 0}
    assert plan["instances"][0]["mapped"][1] == {"from": "a2", "to": "a2x", "state": "scheduled"}
    done = client.post(url, {**body, "dry_run": False}, content_type="application/json").json()
    assert done["summary"] == {"planned": 0, "migrated": 3, "refused": 0}
    bad = client.post(url, {**body, "mapping": {"a2": "nope"}}, content_type="application/json")
    assert bad.status_code == 400 and "mapping.a2" in bad.json()["error"]["fields"]
    missing = client.post(url, {**body, "to_version": 9}, content_type="application/json").json()
    assert "to_version" in missing["error"]["fields"]
    viewer = UserFactory(username="viewer")
    grant(viewer, old, VIEW)
    client.force_login(viewer)
    assert client.post(url, body, content_type="application/json").status_code == 403
    client.force_login(UserFactory(username="nobody"))
    assert client.post(url, body, content_type="application/json").status_code == 404


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL")
def test_a_migration_racing_a_step_completing_loses_nothing(versions):
    """Both lock the instance row: whichever goes first, the other sees its result."""
    old, new, started = versions
    for round in range(10):
        process = engine.process_start(
            definition=old, business_key=f"RACE-{round}", actor=SYSTEM
        ).process
        a1 = task(process, "a1")
        barrier = threading.Barrier(2)
        errors = []

        def step(task_id=a1.pk, barrier=barrier, errors=errors):
            try:
                barrier.wait()
                engine.task_complete(task_id=task_id, actor=Actor.worker(), result={"n": 1})
            except Exception as exc:  # noqa: BLE001 - asserted below
                errors.append(exc)
            finally:
                connection.close()

        def move(process_id=process.pk, barrier=barrier, errors=errors):
            try:
                barrier.wait()
                engine.process_migrate(
                    process_id=process_id,
                    key="pay",
                    from_version=1,
                    to_version=2,
                    mapping={"a2": "a2x"},
                    actor=SYSTEM,
                )
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=step), threading.Thread(target=move)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        process.refresh_from_db()
        assert process.definition_id == new.pk
        states = {t.name: t.state for t in process.tasks.all()}
        assert states["a1"] == "completed" and process.variables["a1"] == {"n": 1}
        assert states["a2x"] == "scheduled" and states["a3"] == "scheduled"
        assert history.differences(process) == []
    assert Conflict  # the running-step refusal is covered above


def test_the_admin_shows_the_plan_then_migrates(versions, admin_client):
    old, new, (p0, p1, p2) = versions
    complete(p0, "a1")
    url = f"/admin/processes/processdefinition/{new.pk}/migrate/"
    assert (
        url
        in admin_client.get(f"/admin/processes/processdefinition/{new.pk}/change/").content.decode()
    )
    form = {"source": old.pk, "mapping": '{"a2": "a2x"}', "instances": str(p0.pk)}
    page = admin_client.post(url, {**form, "_plan": "1"}).content.decode()
    assert "Plan (nothing moved): 1 instance" in page and "a2 → a2x (scheduled)" in page
    p0.refresh_from_db()
    assert p0.definition_id == old.pk
    page = admin_client.post(url, {**form, "_migrate": "1"}).content.decode()
    assert "Result: 1 instance" in page and ">moved<" in page
    p0.refresh_from_db()
    assert p0.definition_id == new.pk
    # a bad mapping is a message, nothing moves
    page = admin_client.post(url, {**form, "mapping": "[1]", "_migrate": "1"}).content.decode()
    assert "must be a JSON object" in page


def test_the_admin_page_needs_publish_and_operate(versions, client):
    old, new, started = versions
    clerk = UserFactory(username="clerk", is_staff=True)
    grant(clerk, old, OPERATE)
    client.force_login(clerk)
    assert client.get(f"/admin/processes/processdefinition/{new.pk}/migrate/").status_code == 403
