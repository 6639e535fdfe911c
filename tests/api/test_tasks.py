"""GET /api/inbox/ and POST /api/tasks/{id}/claim|release|complete|delegate/."""

import pytest

from processes import engine
from processes.events import Actor
from processes.models import ProcessEvent, TaskInstance
from tests.factories import UserFactory, definition_data

pytestmark = pytest.mark.django_db


@pytest.fixture
def approval(import_definition):
    return import_definition(
        definition_data(
            "approval",
            stages=[
                (
                    "APPROVE",
                    [
                        {
                            "task_name": "approve",
                            "task_type": "HUMAN",
                            "assigned_to": "managers",
                            "outcomes": ["approve", "reject"],
                            "form": [
                                {"name": "amount", "type": "integer", "min": 0},
                                {"name": "rate", "type": "decimal"},
                            ],
                        }
                    ],
                ),
                ("PAY", [{"task_name": "pay", "task_type": "HUMAN", "assigned_to": "payroll"}]),
            ],
        )
    )


@pytest.fixture
def task(approval):
    process = engine.process_start(
        definition_key="approval", business_key="EMP-1", actor=Actor.system("test")
    ).process
    return TaskInstance.objects.get(process=process, name="approve")


@pytest.fixture
def manager(db):
    return UserFactory(username="mia", roles=["managers"])


@pytest.fixture
def other_manager(db):
    return UserFactory(username="max", roles=["managers"])


@pytest.fixture
def clerk(db):
    return UserFactory(username="carl", roles=["payroll"])


def post(client, task, action, body=None):
    return client.post(f"/api/tasks/{task.pk}/{action}/", body or {}, format="json")


def test_inbox_lists_open_tasks_of_my_roles(api, task, manager, clerk):
    response = api(manager).get("/api/inbox/")
    assert response.status_code == 200
    [item] = response.json()["results"]
    assert (item["id"], item["name"], item["role"]) == (task.pk, "approve", "managers")
    assert item["business_key"] == "EMP-1"
    assert item["overdue"] is False
    assert api(clerk).get("/api/inbox/").json()["count"] == 0


def test_inbox_of_a_stranger_is_empty(api, task, stranger, staff):
    assert api(stranger).get("/api/inbox/").json()["count"] == 0
    assert api(staff).get("/api/inbox/").json()["count"] == 0  # the inbox is a person's work


def test_claim_and_release(api, task, manager):
    response = post(api(manager), task, "claim")
    assert response.status_code == 200
    assert response.json()["task"]["claimed_by"] == "mia"
    response = post(api(manager), task, "release")
    assert response.status_code == 200
    assert response.json()["task"]["claimed_by"] is None


def test_claim_of_someone_elses_claim_is_409(api, task, manager, other_manager):
    post(api(manager), task, "claim")
    response = post(api(other_manager), task, "claim")
    assert response.status_code == 409
    assert post(api(other_manager), task, "release").status_code == 409


def test_complete_with_decision(api, task, manager):
    response = post(
        api(manager),
        task,
        "complete",
        {"decision": "approve", "comment": "ok", "data": {"amount": 5}},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["task"]["state"] == "completed"
    assert body["task"]["result"]["decision"] == "approve"
    assert body["task"]["result"]["amount"] == 5
    assert body["process"]["current_stage"] == "PAY"


def test_a_decision_may_say_when_it_was_taken(api, task, manager):
    from processes.models import ProcessEvent

    body = {"decision": "approve", "data": {"amount": 5}, "occurred_at": "2026-12-06T17:30:00"}
    assert post(api(manager), task, "complete", body).status_code == 200
    decided = ProcessEvent.objects.get(task=task, type="task_completed")
    assert decided.occurred_at.isoformat() == "2026-12-06T17:30:00+00:00"  # no offset: UTC
    assert decided.created_at > decided.occurred_at
    bad = post(api(manager), task, "complete", {"decision": "approve", "occurred_at": "soon"})
    assert bad.status_code == 400 and "occurred_at" in bad.json()["error"]["fields"]


def test_complete_invalid_decision_names_fields(api, task, manager):
    response = post(
        api(manager), task, "complete", {"decision": "maybe", "data": {"amount": -1, "x": 1}}
    )
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert {"decision", "data.amount", "data.x"} <= set(fields)
    assert TaskInstance.objects.get(pk=task.pk).state == "scheduled"


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"rate": "1e400"}, "data.rate", "must be between -1e15 and 1e15"),
        ({"rate": "-1e400"}, "data.rate", "must be between -1e15 and 1e15"),
        ({"rate": 10**300}, "data.rate", "must be between -1e15 and 1e15"),
        ({"rate": "NaN"}, "data.rate", "must be a finite number"),
        ({"rate": "-Infinity"}, "data.rate", "must be a finite number"),
        ({"amount": "1e999999"}, "data.amount", "must be between -1e15 and 1e15"),
        ({"amount": 10**16}, "data.amount", "must be between -1e15 and 1e15"),
    ],
)
def test_complete_with_a_huge_or_non_finite_number_is_400(api, task, manager, data, field, message):
    response = post(api(manager), task, "complete", {"decision": "approve", "data": data})

    assert response.status_code == 400
    assert message in response.json()["error"]["fields"][field][0]
    assert TaskInstance.objects.get(pk=task.pk).state == "scheduled"
    ok = post(api(manager), task, "complete", {"decision": "approve", "data": {"rate": "2.5"}})
    assert (
        ok.status_code == 200 and ok.json()["task"]["result"]["rate"] == "2.5"
    )  # a decimal: canonical text


def test_complete_data_not_an_object_is_400(api, task, manager):
    response = post(api(manager), task, "complete", {"decision": "approve", "data": [1]})
    assert response.status_code == 400
    assert "data" in response.json()["error"]["fields"]


def test_complete_a_closed_task_is_409_and_recorded(api, task, manager, other_manager):
    post(api(manager), task, "complete", {"decision": "approve"})
    count = ProcessEvent.objects.count()
    response = post(api(other_manager), task, "complete", {"decision": "reject"})
    assert response.status_code == 409
    assert "mia" in response.json()["error"]["message"]
    assert ProcessEvent.objects.count() == count + 1
    assert TaskInstance.objects.get(pk=task.pk).result["decision"] == "approve"


def test_claim_a_closed_task_is_409(api, task, manager):
    post(api(manager), task, "complete", {"decision": "approve"})
    assert post(api(manager), task, "claim").status_code == 409


def test_other_role_gets_404(api, task, clerk):
    for action in ("claim", "release", "complete", "delegate"):
        response = post(api(clerk), task, action, {"decision": "approve", "to": "carl"})
        assert response.status_code == 404, action


def test_service_account_without_role_gets_404(api, task, stranger):
    assert post(api(stranger), task, "claim").status_code == 404


def test_unknown_task_is_404(api, manager, db):
    assert api(manager).post("/api/tasks/999999/claim/", {}, format="json").status_code == 404
    huge = 10**30
    assert api(manager).post(f"/api/tasks/{huge}/claim/", {}, format="json").status_code == 404


def test_pending_task_is_404(api, task, clerk):
    pay = TaskInstance.objects.get(process=task.process, name="pay")
    assert post(api(clerk), pay, "claim").status_code == 404


def test_delegate(api, task, manager, other_manager):
    response = post(api(manager), task, "delegate", {"to": "max", "comment": "yours"})
    assert response.status_code == 200
    assert response.json()["task"]["assignee"] == "max"
    inbox = api(other_manager).get("/api/inbox/").json()["results"]
    assert [t["assignee"] for t in inbox] == ["max"]


def test_delegate_to_a_non_member_is_400(api, task, manager, clerk):
    response = post(api(manager), task, "delegate", {"to": "carl"})
    assert response.status_code == 400
    assert "to" in response.json()["error"]["fields"]


def test_delegate_to_unknown_user_is_400(api, task, manager):
    response = post(api(manager), task, "delegate", {"to": "nobody"})
    assert response.status_code == 400
    assert "to" in response.json()["error"]["fields"]


def test_delegate_needs_to(api, task, manager):
    response = post(api(manager), task, "delegate", {})
    assert response.status_code == 400
    assert "to" in response.json()["error"]["fields"]


def test_assignee_outside_the_role_may_act(api, task, manager):
    outsider = UserFactory(username="olga")
    # delegation requires membership; put olga in by assigning through the engine as staff would
    outsider.groups.add(*manager.groups.all())
    post(api(manager), task, "delegate", {"to": "olga"})
    outsider.groups.clear()
    response = post(api(outsider), task, "complete", {"decision": "reject"})
    assert response.status_code == 200


def test_process_detail_names_who_holds_each_task(api, task, manager, staff):
    # given an approval task claimed by mia, then delegated to mona (which drops the claim)
    post(api(manager), task, "claim")
    claimed = api(staff).get(f"/api/processes/{task.process_id}/").json()["tasks"][0]
    delegate = UserFactory(username="mona", roles=["managers"])
    post(api(manager), task, "delegate", {"to": "mona"})
    # when an external system reads the process
    response = api(staff).get(f"/api/processes/{task.process_id}/")
    # then each task names its assignee and claimer by username, None when there is none
    assert response.status_code == 200
    approve, pay = response.json()["tasks"]
    assert (claimed["assignee"], claimed["claimed_by"]) == (None, "mia")
    assert (approve["name"], approve["assignee"], approve["claimed_by"]) == (
        "approve",
        delegate.username,
        None,
    )
    assert (pay["assignee"], pay["claimed_by"]) == (None, None)


@pytest.mark.parametrize("token_cache", [5, 0])
def test_process_detail_is_three_queries(
    api, task, manager, staff, django_assert_num_queries, settings, token_cache
):
    settings.FLOWDESK_TOKEN_CACHE_SECONDS = token_cache
    post(api(manager), task, "claim")
    client = api(staff)
    client.get(f"/api/processes/{task.process_id}/")  # the token exists (and is cached)
    # token and user (unless this web worker holds them), process with its definition's version
    # and the grant, tasks with people
    with django_assert_num_queries(2 if token_cache else 3):
        response = client.get(f"/api/processes/{task.process_id}/")
    assert response.json()["tasks"][0]["claimed_by"] == "mia"
