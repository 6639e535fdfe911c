"""External tasks that lock: POST /api/queues/{q}/lock/, .../tasks/{id}/extend/ and .../unlock/;
another worker's answer while locked is 409 and recorded; an expired lock frees the task."""

import datetime as dt

import pytest
from django.utils import timezone

from processes.models import EventType, ProcessInstance, TaskInstance
from tests.api.test_events import seed_event

pytestmark = pytest.mark.django_db

QUEUE = "/api/queues/confirm_order_queue"


class Clock:
    """``timezone.now`` moved forward by hand (locks compare with it)."""

    def __init__(self, real):
        self.real, self.offset = real, dt.timedelta()

    def __call__(self):
        return self.real() + self.offset

    def advance(self, seconds):
        self.offset += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch):
    c = Clock(timezone.now)
    monkeypatch.setattr(timezone, "now", c)
    return c


@pytest.fixture
def orders(api, system):
    """Three pizza orders whose confirm_order waits in its queue."""
    client = api(system)
    for ref in ("ORDER-1", "ORDER-2", "ORDER-3"):
        event = seed_event("StartWorkflow", business_ref_no=ref)
        assert client.post("/api/events/", event, format="json").status_code == 202
    return client


def lock(client, worker, max_tasks=10, seconds=60):
    answer = client.post(
        f"{QUEUE}/lock/",
        {"worker_id": worker, "max_tasks": max_tasks, "lock_seconds": seconds},
        format="json",
    )
    assert answer.status_code == 200, answer.content
    return answer.json()


def answer(client, task, worker=None, event="TaskCompleted"):
    body = seed_event(event, "confirm_order", business_ref_no=task["business_ref_no"])
    if worker:
        body["worker_id"] = worker
    return client.post("/api/events/", body, format="json")


def test_a_locked_task_goes_to_one_worker_until_its_lock_expires(orders, clock):
    # A takes two, B the third; nothing is left for C
    a = lock(orders, "A", max_tasks=2)
    assert [t["business_ref_no"] for t in a] == ["ORDER-1", "ORDER-2"]
    assert {t["locked_by"] for t in a} == {"A"} and a[0]["event_name"] == "StartTask"
    b = lock(orders, "B")
    assert [t["business_ref_no"] for t in b] == ["ORDER-3"]
    assert lock(orders, "C") == []
    # the plain listing still shows every scheduled task
    assert orders.get(f"{QUEUE}/tasks/").json()["count"] == 3

    # after 60 s the locks expire: the tasks are back in the queue
    clock.advance(61)
    again = lock(orders, "C")
    assert [t["business_ref_no"] for t in again] == ["ORDER-1", "ORDER-2", "ORDER-3"]


def test_only_the_lock_owner_answers_and_another_workers_answer_is_409_recorded(orders):
    (task,) = lock(orders, "A", max_tasks=1)
    process = ProcessInstance.objects.get(business_key=task["business_ref_no"])

    refused = answer(orders, task, worker="B")
    assert refused.status_code == 409
    assert "locked by 'A'" in refused.json()["error"]["message"]
    assert answer(orders, task).status_code == 409  # no worker_id: refused as well
    assert answer(orders, task, worker="B", event="TaskFailed").status_code == 409
    rejected = process.events.filter(type=EventType.TASK_DUPLICATE, task_name="confirm_order")
    assert rejected.count() == 3
    assert "locked by 'A'" in rejected.first().data["data"]["rejected"]
    assert TaskInstance.objects.get(pk=task["task_id"]).state == "scheduled"

    assert answer(orders, task, worker="A").status_code == 202
    done = TaskInstance.objects.get(pk=task["task_id"])
    assert done.state == "completed" and done.locked_by == ""


def test_extend_keeps_the_lock_and_unlock_gives_it_back(orders, clock):
    (task,) = lock(orders, "A", max_tasks=1, seconds=30)
    url = f"{QUEUE}/tasks/{task['task_id']}"
    clock.advance(20)
    extended = orders.post(f"{url}/extend/", {"worker_id": "A", "lock_seconds": 30}, format="json")
    assert extended.status_code == 200 and extended.json()["locked_by"] == "A"
    clock.advance(20)  # 40 s after the lock: still A's thanks to the extension
    assert [t["task_id"] for t in lock(orders, "B")] != [task["task_id"]]
    assert task["task_id"] not in [t["task_id"] for t in lock(orders, "C")]

    # B can neither extend nor unlock A's task
    for action, body in (("extend", {"lock_seconds": 30}), ("unlock", {})):
        refused = orders.post(f"{url}/{action}/", {"worker_id": "B", **body}, format="json")
        assert refused.status_code == 409, action

    unlocked = orders.post(f"{url}/unlock/", {"worker_id": "A"}, format="json")
    assert unlocked.status_code == 200 and unlocked.json()["locked_by"] == ""
    assert [t["task_id"] for t in lock(orders, "D")] == [task["task_id"]]
    # an expired lock can't be extended: another worker may hold the task by now
    clock.advance(61)
    late = orders.post(f"{url}/extend/", {"worker_id": "D", "lock_seconds": 30}, format="json")
    assert late.status_code == 409


def test_an_expired_lock_lets_anyone_answer(orders, clock):
    (task,) = lock(orders, "A", max_tasks=1, seconds=5)
    clock.advance(6)
    assert answer(orders, task, worker="B").status_code == 202


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"max_tasks": 1, "lock_seconds": 60}, "worker_id"),
        ({"worker_id": "A", "max_tasks": 0, "lock_seconds": 60}, "max_tasks"),
        ({"worker_id": "A", "max_tasks": 101, "lock_seconds": 60}, "max_tasks"),
        ({"worker_id": "A", "max_tasks": 1}, "lock_seconds"),
        ({"worker_id": "A", "max_tasks": 1, "lock_seconds": 0}, "lock_seconds"),
        ({"worker_id": "  ", "max_tasks": 1, "lock_seconds": 60}, "worker_id"),
    ],
)
def test_a_bad_lock_request_is_a_400_naming_the_field(orders, body, field):
    refused = orders.post(f"{QUEUE}/lock/", body, format="json")
    assert refused.status_code == 400
    assert field in refused.json()["error"]["fields"]


def test_lock_takes_only_tasks_of_definitions_the_caller_operates(orders, api, viewer, stranger):
    for user in (viewer, stranger):
        assert (
            api(user)
            .post(f"{QUEUE}/lock/", {"worker_id": "X", "lock_seconds": 60}, format="json")
            .json()
            == []
        )
    (task,) = lock(orders, "A", max_tasks=1)
    url = f"{QUEUE}/tasks/{task['task_id']}/extend/"
    refused = api(stranger).post(url, {"worker_id": "A", "lock_seconds": 5}, format="json")
    assert refused.status_code in (403, 404)


def test_a_task_of_another_queue_is_404(orders):
    (task,) = lock(orders, "A", max_tasks=1)
    url = f"/api/queues/other/tasks/{task['task_id']}/unlock/"
    assert orders.post(url, {"worker_id": "A"}, format="json").status_code == 404
