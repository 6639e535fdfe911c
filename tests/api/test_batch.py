"""POST /api/processes/batch/: many starts, one answer per item, idempotent per business key."""

import pytest
from django.db.models import Count, Max
from django.utils.module_loading import import_string

from processes import engine
from processes.db import engine as db_engine
from processes.engine import batch
from processes.events import Actor
from processes.models import ProcessEvent, ProcessInstance, TaskInstance
from tests.api.conftest import VIEW, grant
from tests.conftest import record_steps
from tests.factories import UserFactory, definition_data

pytestmark = pytest.mark.django_db


def send(client, items, definition="pizza", **kwargs):
    return client.post(
        "/api/processes/batch/", {"definition": definition, "items": items}, format="json", **kwargs
    )


def test_every_item_answered_in_order_with_its_own_status(api, system):
    # given one order already running
    api(system).post(
        "/api/processes/",
        {"definition": "pizza", "business_key": "ORDER-2", "input": {}},
        format="json",
    )
    items = [
        {"business_key": "ORDER-1", "input": {"customer": "Ada"}},
        {"business_key": "ORDER-2", "input": {"customer": "Bob"}},
        {"business_key": "", "input": {}},
        {"business_key": "ORDER-3", "input": "not an object"},
        {"business_key": "ORDER-1", "input": {}},
        "not an item",
        {"business_key": "ORDER-4", "colour": "red"},
    ]
    # when
    response = send(api(system), items)
    # then
    assert response.status_code == 200
    body = response.json()
    assert body["summary"] == {"created": 1, "existing": 1, "invalid": 5}
    answers = body["items"]
    assert [a["index"] for a in answers] == list(range(7))
    assert [a["status"] for a in answers] == [201, 200, 400, 400, 400, 400, 400]
    assert answers[2]["errors"] == {"business_key": ["must not be empty"]}
    assert answers[3]["errors"] == {"input": ["must be an object"]}
    assert answers[4]["errors"] == {"business_key": ["repeats item 0 of this batch"]}
    assert answers[5]["errors"] == {"item": ["must be an object {business_key, input}"]}
    assert answers[6]["errors"] == {"colour": ["unknown field"]}
    new = ProcessInstance.objects.get(pk=answers[0]["process"])
    assert (new.business_key, new.variables, new.state) == (
        "ORDER-1",
        {"customer": "Ada"},
        "running",
    )
    assert answers[1]["process"] == str(ProcessInstance.objects.get(business_key="ORDER-2").pk)
    assert ProcessInstance.objects.count() == 2  # nothing else started
    # the new instance is as a single start makes it: tasks scheduled, events in order
    assert TaskInstance.objects.get(process=new, name="confirm_order").state == "scheduled"
    assert list(ProcessEvent.objects.filter(process=new).values_list("seq", "type", "actor_label"))[
        :2
    ] == [(1, "process_started", "shop"), (2, "stage_started", "shop")]


def test_sending_the_same_batch_again_starts_nothing_new(api, system):
    items = [{"business_key": f"ORDER-{i}", "input": {"n": i}} for i in range(450)]
    first = send(api(system), items).json()
    assert first["summary"] == {"created": 450, "existing": 0, "invalid": 0}
    # when the caller retries after a timeout
    again = send(api(system), items).json()
    # then every item answers the instance the first batch started
    assert again["summary"] == {"created": 0, "existing": 450, "invalid": 0}
    assert [a["process"] for a in again["items"]] == [a["process"] for a in first["items"]]
    assert ProcessInstance.objects.count() == 450
    assert TaskInstance.objects.filter(state="scheduled").count() == 450
    # every instance has its own gapless event log, as a single start writes it
    logs = ProcessEvent.objects.values("process").annotate(n=Count("id"), last=Max("seq"))
    assert {(log["n"], log["last"]) for log in logs} == {(5, 5)} and len(logs) == 450


def test_steps_of_new_instances_are_queued_after_commit(
    import_definition, django_capture_on_commit_callbacks, monkeypatch
):
    definition = import_definition(definition_data("steps"))
    queued, steps = [], []
    monkeypatch.setattr(batch.queue, "enqueue", lambda func, *args: queued.append((func, args)))
    record_steps(monkeypatch, lambda task_id, timeout: steps.append(task_id))

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        results = engine.process_start_batch(
            definition=definition,
            items=[{"business_key": f"K{i}"} for i in range(3)],
            actor=Actor.system("test"),
        )
    assert queued == []  # nothing before the commit
    for callback in callbacks:
        callback()
    # one job for the chunk, naming the function a worker runs to queue each step
    assert [func for func, _ in queued] == ["processes.queue.enqueue_steps"]
    func = import_string(queued[0][0])
    func(*queued[0][1])
    ids = TaskInstance.objects.filter(process_id__in=[r.process_id for r in results])
    assert sorted(steps) == sorted(ids.values_list("id", flat=True)) and len(steps) == 3
    # and each step keeps its wake-up time: the sweep queues it again if that job is lost
    assert all(t.wake_at is not None for t in ids)


def test_a_chunk_racing_a_concurrent_start_falls_back_item_by_item(api, system, monkeypatch):
    # given ORDER-2 started by someone else after the batch looked (the race window)
    api(system).post(
        "/api/processes/",
        {"definition": "pizza", "business_key": "ORDER-2", "input": {}},
        format="json",
    )
    theirs = ProcessInstance.objects.get(business_key="ORDER-2")
    monkeypatch.setattr(db_engine, "existing_instances", lambda *a, **k: {})
    # when
    body = send(api(system), [{"business_key": f"ORDER-{i}"} for i in range(1, 4)]).json()
    # then the unique index refused the chunk, and item by item theirs won
    assert [a["status"] for a in body["items"]] == [201, 200, 201]
    assert body["items"][1]["process"] == str(theirs.pk)
    assert ProcessInstance.objects.count() == 3


def test_needs_the_start_grant_like_a_single_start(api, pizza, stranger):
    viewer = UserFactory(username="watcher")
    grant(viewer, pizza, VIEW)
    items = [{"business_key": "ORDER-1"}]
    assert send(api(viewer), items).status_code == 403
    assert send(api(stranger), items).status_code == 404
    assert send(api(), items).status_code == 401
    assert ProcessInstance.objects.count() == 0


@pytest.mark.parametrize(
    "body,field",
    [
        ({"definition": "pizza", "items": []}, "items"),
        ({"definition": "pizza", "items": "x"}, "items"),
        ({"definition": "pizza"}, "items"),
        ({"items": [{"business_key": "A"}]}, "definition"),
    ],
)
def test_bad_request_names_the_field(api, system, body, field):
    response = api(system).post("/api/processes/batch/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_more_than_10000_items_is_refused_whole(api, system):
    items = [{"business_key": f"K{i}"} for i in range(10_001)]
    response = send(api(system), items)
    assert response.status_code == 400
    assert "items" in response.json()["error"]["fields"]
    assert ProcessInstance.objects.count() == 0


def test_unknown_definition_is_404(api, staff):
    response = send(api(staff), [{"business_key": "A"}], definition="nope")
    assert response.status_code == 404
