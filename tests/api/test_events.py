"""POST /api/events/ (the seed's event protocol) and GET /api/queues/{task_queue}/tasks/."""

import pytest

from processes.models import ProcessEvent, ProcessInstance
from tests.api.conftest import START, grant
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

REF = "ORDER-001"
STAGE_OF = {
    "confirm_order": "ORDER",
    "make_food": "PREPARE",
    "assign_executive": "PREPARE",
    "confirm_delivery": "PREPARE",
    "deliver_food": "DELIVER",
}
TYPE_OF = {name: "SERVICE" for name in STAGE_OF} | {"deliver_food": "HUMAN"}


def seed_event(event_name, task_name=None, **extra):
    """A payload exactly as seed 002 shows it."""
    payload = {"business_ref_no": REF, "component_name": "ITALIAN", "event_name": event_name}
    if task_name:
        payload |= {
            "stage_name": STAGE_OF[task_name],
            "task_name": task_name,
            "task_type": TYPE_OF[task_name],
        }
    return payload | extra


class Shop:
    """The external system: sends seed events, reads the process."""

    def __init__(self, client):
        self.client = client

    def send(self, event_name, task_name=None, **extra):
        return self.client.post(
            "/api/events/", seed_event(event_name, task_name, **extra), format="json"
        )

    def process(self):
        process = ProcessInstance.objects.filter(business_key=REF).latest("created_at")
        return self.client.get(f"/api/processes/{process.pk}/").json()

    def scheduled(self):
        return sorted(t["name"] for t in self.process()["tasks"] if t["state"] == "scheduled")


@pytest.fixture
def shop(api, system):
    return Shop(api(system))


def test_deliver_pizza_through_events_and_the_couriers_decision(shop, api):
    # StartWorkflow: ORDER's only task is scheduled
    response = shop.send("StartWorkflow")
    assert response.status_code == 202
    assert response.json()["scheduled"] == ["confirm_order"]
    assert shop.scheduled() == ["confirm_order"]
    assert shop.process()["business_status"] == ""

    # confirm_order done: PREPARE's two parallel tasks
    response = shop.send("TaskCompleted", "confirm_order", data={"eta_minutes": 30})
    assert response.status_code == 202
    assert response.json()["duplicate"] is False
    assert shop.scheduled() == ["assign_executive", "make_food"]
    process = shop.process()
    assert process["business_status"] == "ORDER CONFIRMED"
    assert process["current_stage"] == "PREPARE"
    # the data is the task's result, under its own name, never merged over other variables
    assert process["variables"]["confirm_order"] == {"eta_minutes": 30}
    assert "eta_minutes" not in process["variables"]

    # one branch done: the join waits for the other
    assert shop.send("TaskCompleted", "make_food").status_code == 202
    assert shop.scheduled() == ["assign_executive"]

    # both done: the join runs
    assert shop.send("TaskCompleted", "assign_executive", data={"courier": "Bo"}).status_code == 202
    assert shop.scheduled() == ["confirm_delivery"]
    assert shop.process()["business_status"] == "ORDER CONFIRMED"

    assert shop.send("TaskCompleted", "confirm_delivery").status_code == 202
    assert shop.scheduled() == ["deliver_food"]
    process = shop.process()
    assert process["business_status"] == "FOOD ON THE WAY"
    assert process["current_stage"] == "DELIVER"

    # the HUMAN task is not the seed event path's to complete: 409, nothing recorded
    seq = ProcessEvent.objects.filter(process_id=process["id"]).count()
    response = shop.send("TaskCompleted", "deliver_food")
    assert response.status_code == 409
    assert (
        "decided in the inbox or through /api/tasks/{id}/complete/"
        in (response.json()["error"]["message"])
    )
    assert ProcessEvent.objects.filter(process_id=process["id"]).count() == seq
    # the courier decides it through the API (or the inbox)
    courier = UserFactory(username="courier", roles=["delivery_executive"])
    task_id = next(t["id"] for t in process["tasks"] if t["name"] == "deliver_food")
    response = api(courier).post(f"/api/tasks/{task_id}/complete/", {}, format="json")
    assert response.status_code == 200
    process = shop.process()
    assert process["state"] == "completed"
    assert process["business_status"] == "FOOD DELIVERED"
    assert shop.scheduled() == []
    assert process["variables"]["assign_executive"] == {"courier": "Bo"}


def test_failed_then_pending_then_completed(shop):
    shop.send("StartWorkflow")

    # TaskFailed: the task fails, an incident opens, nothing else is scheduled
    response = shop.send("TaskFailed", "confirm_order", error="oven broken")
    assert response.status_code == 202
    process = shop.process()
    assert process["state"] == "failed"
    task = process["tasks"][0]
    assert (task["state"], task["error"]) == ("failed", "oven broken")
    assert shop.scheduled() == []

    # completing a failed task is out of order: 409, recorded, nothing changes
    response = shop.send("TaskCompleted", "confirm_order")
    assert response.status_code == 409
    assert shop.process()["tasks"][0]["state"] == "failed"

    # TaskPending (the re-trier): scheduled again, incident resolved
    response = shop.send("TaskPending", "confirm_order")
    assert response.status_code == 202
    assert shop.scheduled() == ["confirm_order"]
    assert shop.process()["state"] == "running"

    # TaskCompleted: the process goes on
    assert shop.send("TaskCompleted", "confirm_order").status_code == 202
    assert shop.scheduled() == ["assign_executive", "make_food"]
    assert shop.process()["business_status"] == "ORDER CONFIRMED"


def _event_count():
    return ProcessEvent.objects.count()


def test_duplicate_completion_changes_nothing_and_is_recorded(shop):
    shop.send("StartWorkflow")
    shop.send("TaskCompleted", "confirm_order", data={"n": 1})
    before = shop.process()
    count = _event_count()
    # when
    response = shop.send("TaskCompleted", "confirm_order", data={"n": 2})
    # then
    assert response.status_code == 200
    assert response.json()["duplicate"] is True
    after = shop.process()
    assert after["variables"] == before["variables"]
    assert after["tasks"] == before["tasks"]
    assert _event_count() == count + 1
    assert ProcessEvent.objects.latest("id").type == "task_duplicate"


def test_duplicate_start_workflow_is_200_same_instance(shop):
    first = shop.send("StartWorkflow").json()
    again = shop.send("StartWorkflow")
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["process"]["id"] == first["process"]["id"]
    assert ProcessInstance.objects.count() == 1


def test_duplicate_pending_for_a_scheduled_task_is_200(shop):
    shop.send("StartWorkflow")
    response = shop.send("TaskPending", "confirm_order")
    assert response.status_code == 200
    assert response.json()["duplicate"] is True
    assert ProcessEvent.objects.latest("id").type == "task_duplicate"


def test_duplicate_failure_is_200(shop):
    shop.send("StartWorkflow")
    shop.send("TaskFailed", "confirm_order")
    response = shop.send("TaskFailed", "confirm_order")
    assert response.status_code == 200
    assert response.json()["duplicate"] is True


@pytest.mark.parametrize(
    "event_name,task_name",
    [
        ("TaskCompleted", "confirm_delivery"),  # still pending: its parents are not done
        ("TaskFailed", "make_food"),  # pending: its stage has not started
        ("TaskPending", "confirm_delivery"),  # pending, never failed
    ],
)
def test_out_of_order_event_is_409_recorded_nothing_changes(shop, event_name, task_name):
    shop.send("StartWorkflow")
    before = shop.process()
    count = _event_count()
    # when
    response = shop.send(event_name, task_name)
    # then
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    after = shop.process()
    assert after["tasks"] == before["tasks"]
    assert after["state"] == before["state"]
    assert _event_count() == count + 1
    event = ProcessEvent.objects.latest("id")
    assert (event.type, event.task_name) == ("task_duplicate", task_name)
    assert event.data["event"] == event_name
    assert "rejected" in event.data["data"]


def test_pending_for_a_completed_task_is_409(shop):
    shop.send("StartWorkflow")
    shop.send("TaskCompleted", "confirm_order")
    response = shop.send("TaskPending", "confirm_order")
    assert response.status_code == 409


def test_event_for_a_cancelled_process_is_409(shop):
    shop.send("StartWorkflow")
    process_id = shop.process()["id"]
    shop.client.post(f"/api/processes/{process_id}/cancel/", {}, format="json")
    assert shop.send("TaskCompleted", "confirm_order").status_code == 409


def test_unknown_component_is_404(shop):
    response = shop.send("StartWorkflow", component_name="FRENCH")
    assert response.status_code == 404


def test_unknown_business_ref_is_404(shop):
    assert shop.send("TaskCompleted", "confirm_order").status_code == 404


def test_unknown_task_is_404(shop):
    shop.send("StartWorkflow")
    payload = seed_event("TaskCompleted") | {"task_name": "bake", "stage_name": "ORDER"}
    response = shop.client.post("/api/events/", payload, format="json")
    assert response.status_code == 404


def test_definition_key_instead_of_component(shop):
    payload = {"business_ref_no": REF, "definition": "pizza", "event_name": "StartWorkflow"}
    assert shop.client.post("/api/events/", payload, format="json").status_code == 202


@pytest.mark.parametrize(
    "payload,field",
    [
        ({"event_name": "StartTask"}, "event_name"),
        ({"event_name": "Boom"}, "event_name"),
        ({"business_ref_no": ""}, "business_ref_no"),
        ({"component_name": None}, "component_name"),
        ({"data": [1, 2]}, "data"),
        ({"event_name": "TaskCompleted"}, "task_name"),
        ({"task_type": "ROBOT"}, "task_type"),
    ],
)
def test_invalid_event_names_the_field(shop, payload, field):
    body = {**seed_event("StartWorkflow"), **payload}
    body = {k: v for k, v in body.items() if v is not None}
    response = shop.client.post("/api/events/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_wrong_stage_is_400(shop):
    shop.send("StartWorkflow")
    response = shop.send("TaskCompleted", "confirm_order", stage_name="PREPARE")
    assert response.status_code == 400
    assert "stage_name" in response.json()["error"]["fields"]


def test_wrong_task_type_is_400(shop):
    shop.send("StartWorkflow")
    response = shop.send("TaskCompleted", "confirm_order", task_type="HUMAN")
    assert response.status_code == 400
    assert "task_type" in response.json()["error"]["fields"]


def test_task_events_need_operate(api, system, pizza):
    Shop(api(system)).send("StartWorkflow")
    user = UserFactory(username="starter")
    grant(user, pizza, START)
    starter = Shop(api(user))
    assert starter.send("TaskCompleted", "confirm_order").status_code == 403
    assert starter.send("StartWorkflow").status_code == 200


def test_events_not_granted_is_404(api, stranger, pizza):
    assert Shop(api(stranger)).send("StartWorkflow").status_code == 404


def test_viewer_may_not_start(api, viewer):
    assert Shop(api(viewer)).send("StartWorkflow").status_code == 403


# --- external workers -----------------------------------------------------------------------------


def test_queue_lists_start_task_payloads(shop):
    shop.send("StartWorkflow")
    response = shop.client.get("/api/queues/confirm_order_queue/tasks/")
    assert response.status_code == 200
    [payload] = response.json()["results"]
    assert {k: payload[k] for k in seed_event("StartWorkflow", "confirm_order")} == {
        **seed_event("StartWorkflow", "confirm_order"),
        "event_name": "StartTask",
    }
    assert payload["task_queue"] == "confirm_order_queue"
    assert payload["process_id"] == shop.process()["id"]
    # the worker answers; the task leaves the queue
    shop.send("TaskCompleted", "confirm_order")
    assert shop.client.get("/api/queues/confirm_order_queue/tasks/").json()["count"] == 0
    names = {
        p["task_name"]
        for p in shop.client.get("/api/queues/make_food_queue/tasks/").json()["results"]
    }
    assert names == {"make_food"}


def test_queue_shows_only_operated_definitions(api, shop, viewer, stranger):
    shop.send("StartWorkflow")
    assert api(viewer).get("/api/queues/confirm_order_queue/tasks/").json()["count"] == 0
    assert api(stranger).get("/api/queues/confirm_order_queue/tasks/").json()["count"] == 0


def test_unknown_queue_is_empty(shop):
    response = shop.client.get("/api/queues/nope/tasks/")
    assert response.status_code == 200
    assert response.json()["count"] == 0
