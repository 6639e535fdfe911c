"""Correlation (X-Request-ID on every event, the causing event) and the point-in-time answer."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

import tests.e2e_steps  # noqa: F401  (registers e2e.work here too, so the definition validates)
from processes import engine, history
from processes.events import Actor
from processes.models import EventType, ProcessInstance
from tests.conftest import wait_for
from tests.factories import UserFactory, definition_data

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(pizza):
    client = APIClient()
    client.force_authenticate(UserFactory(username="boss", is_superuser=True, is_staff=True))
    return client


def start(api, key="ORDER-1", **headers):
    return api.post(
        "/api/processes/",
        {"definition": "pizza", "business_key": key, "input": {"size": "L"}},
        format="json",
        headers=headers,
    )


def test_the_request_id_is_echoed_and_recorded_on_every_event(api):
    response = start(api, **{"X-Request-ID": "shop-req-42"})

    assert response.status_code == 201 and response["X-Request-ID"] == "shop-req-42"
    process = ProcessInstance.objects.get(pk=response.json()["id"])
    assert set(process.events.values_list("correlation_id", flat=True)) == {"shop-req-42"}
    events = api.get(f"/api/processes/{process.pk}/events/").json()["results"]
    assert {e["correlation_id"] for e in events} == {"shop-req-42"}
    assert all(isinstance(e["id"], int) and e["caused_by"] is None for e in events)


def test_a_missing_or_unusable_request_id_is_replaced_by_a_generated_one(api):
    first = start(api, "ORDER-1")
    second = start(api, "ORDER-2", **{"X-Request-ID": "spaces and ünïcode " + "x" * 80})

    generated = {first["X-Request-ID"], second["X-Request-ID"]}
    assert len(generated) == 2 and all(len(g) == 32 for g in generated)
    recorded = {
        p.business_key: set(p.events.values_list("correlation_id", flat=True))
        for p in ProcessInstance.objects.all()
    }
    assert recorded == {"ORDER-1": {first["X-Request-ID"]}, "ORDER-2": {second["X-Request-ID"]}}


def test_every_page_answers_with_a_request_id(client):
    assert client.get("/healthz")["X-Request-ID"]


def test_an_engine_call_outside_a_request_gets_one_id_per_transaction(pizza):
    actor = Actor.system("test")
    one = engine.process_start(definition_key="pizza", business_key="A", input={}, actor=actor)
    two = engine.process_start(definition_key="pizza", business_key="B", input={}, actor=actor)
    ids_one = set(one.process.events.values_list("correlation_id", flat=True))
    ids_two = set(two.process.events.values_list("correlation_id", flat=True))
    assert len(ids_one) == 1 and len(ids_two) == 1 and ids_one != ids_two and "" not in ids_one


def test_a_queued_step_carries_the_request_id_and_its_scheduling_event(
    import_definition, settings, monkeypatch, django_capture_on_commit_callbacks, tmp_path
):
    """django-q2 in sync mode runs the worker function inline: the same pre_execute path."""
    from django_q.conf import Conf

    monkeypatch.setenv("E2E_DIR", str(tmp_path))
    monkeypatch.setattr(Conf, "SYNC", True)
    import_definition(
        definition_data(
            key="e2e",
            stages=[("CALC", [{"task_name": "calc", "handler": "e2e.work", "seconds": 0}])],
        )
    )
    client = APIClient()
    client.force_authenticate(UserFactory(username="boss2", is_superuser=True, is_staff=True))

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/api/processes/",
            {"definition": "e2e", "business_key": "K-1", "input": {}},
            format="json",
            headers={"X-Request-ID": "batch-7"},
        )

    process = ProcessInstance.objects.get(pk=response.json()["id"])
    assert process.state == "completed"
    events = {e.type: e for e in process.events.order_by("seq")}
    scheduled = events[EventType.TASK_SCHEDULED]
    assert events[EventType.TASK_STARTED].caused_by == scheduled.pk
    assert events[EventType.TASK_COMPLETED].caused_by == scheduled.pk
    assert events[EventType.PROCESS_STARTED].caused_by is None
    assert set(process.events.values_list("correlation_id", flat=True)) == {"batch-7"}


# --- point in time ----------------------------------------------------------------------------------


def test_as_of_answers_the_state_rebuilt_from_the_events_then(api):
    process_id = start(api).json()["id"]
    process = ProcessInstance.objects.get(pk=process_id)
    started_at = process.events.order_by("-seq").first().created_at
    engine.process_cancel(process_id=process_id, actor=Actor.system("t"), reason="changed mind")

    then = api.get(f"/api/processes/{process_id}/", {"as_of": started_at.isoformat()})
    now = api.get(f"/api/processes/{process_id}/", {"as_of": timezone.now().isoformat()})

    assert then.status_code == 200
    body = then.json()
    assert body["state"] == "running" and body["variables"] == {"size": "L"}
    assert body["last_seq"] < now.json()["last_seq"]
    assert now.json()["state"] == "cancelled"
    assert {t["name"] for t in body["tasks"]} == set(process.tasks.values_list("name", flat=True))
    assert any(t["state"] == "scheduled" for t in body["tasks"])
    assert all(t["state"] == "cancelled" or t["state"] == "pending" for t in now.json()["tasks"])
    current = api.get(f"/api/processes/{process_id}/").json()
    assert current["state"] == "cancelled" and "as_of" not in current


def test_bad_or_early_as_of_is_a_clear_error(api):
    process_id = start(api).json()["id"]

    bad = api.get(f"/api/processes/{process_id}/", {"as_of": "yesterday-ish"})
    early = api.get(
        f"/api/processes/{process_id}/",
        {"as_of": (timezone.now() - dt.timedelta(days=1)).isoformat()},
    )

    assert bad.status_code == 400 and "as_of" in bad.json()["error"]["fields"]
    assert early.status_code == 404 and "had not started" in early.json()["error"]["message"]


def test_state_at_agrees_with_the_stored_state_at_the_end(pizza):
    process = engine.process_start(
        definition_key="pizza", business_key="Z", input={"size": "S"}, actor=Actor.system("t")
    ).process
    process.refresh_from_db()
    point = history.state_at(process, timezone.now())
    assert point.snapshot.state == process.state
    assert point.snapshot.variables == process.variables
    assert point.snapshot.current_stage == process.current_stage


def test_the_admin_history_shows_request_cause_and_the_state_then(admin_client, api):
    process_id = start(api, **{"X-Request-ID": "adm-1"}).json()["id"]
    process = ProcessInstance.objects.get(pk=process_id)
    first = process.events.order_by("seq").first()
    engine.process_cancel(process_id=process_id, actor=Actor.system("t"), reason="x")
    url = reverse("admin:processes_processinstance_change", args=[process_id])

    page = admin_client.get(url).content.decode()
    then = admin_client.get(url, {"as_of": first.created_at.isoformat()}).content.decode()
    bad = admin_client.get(url, {"as_of": "not a time"}).content.decode()

    assert "adm-1" in page and "state then" in page
    assert 'id="fd-as-of-state"' in then and "state <b>running</b>" in then
    assert 'id="fd-as-of-error"' in bad and "not an ISO 8601 timestamp" in bad


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_real_qcluster_carries_the_correlation_through_the_steps(
    qcluster_factory, import_definition, tmp_path
):
    import_definition(
        definition_data(
            key="e2e",
            stages=[
                ("ONE", [{"task_name": "a", "handler": "e2e.work", "seconds": 0}]),
                ("TWO", [{"task_name": "b", "handler": "e2e.work", "seconds": 0}]),
            ],
        )
    )
    cluster = qcluster_factory(
        broker="orm", FLOWDESK_STEP_MODULES="tests.e2e_steps", E2E_DIR=str(tmp_path)
    )

    cluster.manage("start_process", "e2e", "CORR-1")

    def done():
        found = ProcessInstance.objects.filter(business_key="CORR-1").first()
        return found is not None and found.state == "completed"

    wait_for(done, timeout=60, message=cluster.output())
    process = ProcessInstance.objects.get(business_key="CORR-1")
    events = list(process.events.order_by("seq"))
    assert len({e.correlation_id for e in events}) == 1  # one chain, from the command on
    scheduled = {e.task_name: e.pk for e in events if e.type == EventType.TASK_SCHEDULED}
    for e in events:
        if e.type in (EventType.TASK_STARTED, EventType.TASK_COMPLETED):
            assert e.caused_by == scheduled[e.task_name], (e.type, e.task_name)
