"""The operators' repairs through the API: the incidents, retry, skip (with typed values),
replay, reassign. The same engine calls and events as the admin's; the contract: 200, 400 naming
the field, 403 without ``operate_process``, 404 for what the caller doesn't see, 409 for a state
that doesn't allow it."""

import pytest
from guardian.shortcuts import assign_perm

from processes import steps
from processes.models import EventType, ProcessDefinition, ProcessState, TaskState
from processes.steps import PermanentStepError
from tests.admin.helpers import events, fresh, run_ready_steps, start, task
from tests.api.conftest import OPERATE, VIEW, client_for
from tests.factories import UserFactory, definition_data

pytestmark = pytest.mark.django_db
CORRECT = "processes.correct_variables"


def compute_bonus(ctx):
    plan = ctx.variables.get("plan")
    if not plan:
        raise PermanentStepError("bonus system: no bonus plan for E013")
    return {"amount": "400.00", "currency": "EUR"}


@pytest.fixture
def payroll(import_definition):
    steps.registry.register("test_repairs.bonus", compute_bonus)
    definition = import_definition(
        definition_data(
            "payroll",
            stages=[
                (
                    "CALC",
                    [
                        {
                            "task_name": "bonus",
                            "handler": "test_repairs.bonus",
                            "retry": {"max_attempts": 1},
                            "result": [
                                {"name": "amount", "type": "decimal", "places": 2, "min": 0},
                                {"name": "currency", "type": "string", "pattern": "[A-Z]{3}"},
                            ],
                        }
                    ],
                ),
                (
                    "REVIEW",
                    [
                        {
                            "task_name": "approve_bonus",
                            "task_type": "HUMAN",
                            "assigned_to": "managers",
                            "outcomes": ["approve", "reject"],
                            "not_by_var": ["employee"],
                        }
                    ],
                ),
            ],
        )
    )
    yield definition
    steps.registry.unregister("test_repairs.bonus")


@pytest.fixture
def operator(payroll):
    person = UserFactory(username="olga")
    for perm in (VIEW, OPERATE, CORRECT):
        assign_perm(perm, person, ProcessDefinition.objects.get(key="payroll"))
    return client_for(person)


def failed(business_key="E013-2026-11"):
    process = start("payroll", business_key)
    run_ready_steps(process)
    assert fresh(process).state == ProcessState.FAILED
    return process


def field_errors(response) -> dict:
    return response.json()["error"]["fields"]


# --- the incidents --------------------------------------------------------------------------------


def test_the_incidents_oldest_first_with_their_age_and_repairs(operator):
    first, second = failed("E013-2026-11"), failed("E014-2026-11")
    response = operator.get("/api/incidents/")
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [r["business_key"] for r in rows] == ["E013-2026-11", "E014-2026-11"]
    row = rows[0]
    bonus = task(first, "bonus")
    assert row["state"] == "open" and row["task"] == "bonus" and row["task_id"] == bonus.pk
    assert row["error"] == "bonus system: no bonus plan for E013"
    assert row["age_seconds"] >= 0 and row["resolved_at"] is None
    assert row["repair"]["skip"] == f"/api/tasks/{bonus.pk}/skip/"
    # filters: a definition nobody has, an age none has reached yet
    assert operator.get("/api/incidents/", {"definition": "other"}).json()["results"] == []
    assert operator.get("/api/incidents/", {"older_than": "P1D"}).json()["results"] == []
    assert len(operator.get("/api/incidents/", {"younger_than": "3600"}).json()["results"]) == 2
    bad = operator.get("/api/incidents/", {"older_than": "soon", "state": "closed"})
    assert bad.status_code == 400 and {"older_than", "state"} <= set(field_errors(bad))
    # a retry resolves the first; it fails again: a new open incident
    operator.post(f"/api/tasks/{bonus.pk}/retry/", {"reason": "try again"}, format="json")
    run_ready_steps(first)
    resolved = operator.get("/api/incidents/", {"state": "resolved"}).json()["results"]
    assert [(r["business_key"], r["state"]) for r in resolved] == [("E013-2026-11", "resolved")]
    assert resolved[0]["repair"] == {}
    opened = operator.get("/api/incidents/").json()["results"]
    assert [r["business_key"] for r in opened] == ["E014-2026-11", "E013-2026-11"]
    assert len(operator.get("/api/incidents/", {"state": "all"}).json()["results"]) == 3
    del second


def test_incidents_of_definitions_the_caller_doesnt_see_are_not_listed(payroll):
    failed()
    assert client_for(UserFactory(username="nemo")).get("/api/incidents/").json()["results"] == []
    assert client_for().get("/api/incidents/").status_code in (401, 403)


# --- skip with typed values -------------------------------------------------------------------


def test_skip_sets_typed_values_in_one_transaction_and_the_case_goes_on(operator):
    process = failed()
    bonus = task(process, "bonus")
    url = f"/api/tasks/{bonus.pk}/skip/"
    # a value that doesn't fit the declared type: 400 naming it, nothing changed
    bad = operator.post(
        url, {"reason": "HR", "set": {"bonus.amount": "a lot", "bonus.currency": "EUR"}},
        format="json",
    )  # fmt: skip
    assert bad.status_code == 400
    assert "set.bonus.amount" in field_errors(bad)
    assert task(process, "bonus").state == TaskState.FAILED
    assert operator.post(url, {"set": {}}, format="json").status_code == 400
    assert "reason" in field_errors(operator.post(url, {}, format="json"))

    response = operator.post(
        url,
        {"reason": "rating agreed by phone", "set": {"bonus.amount": "409.3", "bonus.currency": "EUR"}},
        format="json",
    )  # fmt: skip
    assert response.status_code == 200
    assert response.json()["task"]["state"] == "skipped"
    process = fresh(process)
    assert process.variables["bonus"] == {"amount": "409.30", "currency": "EUR"}
    assert process.state == ProcessState.RUNNING
    changed, skipped = (
        events(process, EventType.VARIABLES_CHANGED)[-1],
        events(process, EventType.TASK_SKIPPED)[-1],
    )
    assert changed.data["reason"] == skipped.data["reason"] == "rating agreed by phone"
    assert changed.actor_label == skipped.actor_label
    assert task(process, "approve_bonus").state == TaskState.SCHEDULED
    # again: the task is skipped already
    again = operator.post(url, {"reason": "again"}, format="json")
    assert again.status_code == 409


def test_skip_with_values_needs_the_correct_grant(payroll):
    process = failed()
    person = UserFactory(username="ops")
    assign_perm(OPERATE, person, payroll)
    response = client_for(person).post(
        f"/api/tasks/{task(process, 'bonus').pk}/skip/",
        {"reason": "r", "set": {"bonus.amount": "1.00"}},
        format="json",
    )
    assert response.status_code == 403
    assert task(process, "bonus").state == TaskState.FAILED


# --- retry, replay ----------------------------------------------------------------------------


def test_retry_then_the_case_completes_after_the_replay(operator):
    process = failed()
    bonus = task(process, "bonus")
    operator.post(
        f"/api/processes/{process.pk}/variables/",
        {"set": {"plan": {"rate": 0.4}}, "reason": "plan by mail"},
        format="json",
    )
    response = operator.post(f"/api/tasks/{bonus.pk}/retry/", {"reason": "plan set"}, format="json")
    assert response.status_code == 200 and response.json()["task"]["state"] == "scheduled"
    assert events(process, EventType.TASK_RETRIED)[-1].data["reason"] == "plan set"
    # a second retry while it waits: nothing changes
    assert operator.post(f"/api/tasks/{bonus.pk}/retry/", {}, format="json").status_code == 200
    run_ready_steps(process)
    assert task(process, "bonus").state == TaskState.COMPLETED
    assert operator.post(f"/api/tasks/{bonus.pk}/retry/", {}, format="json").status_code == 409
    replayed = operator.post(
        f"/api/tasks/{bonus.pk}/replay/", {"reason": "new rate"}, format="json"
    )
    assert replayed.status_code == 200
    assert task(process, "bonus").state == TaskState.SCHEDULED
    assert events(process, EventType.TASK_RESET)[-1].data["reason"] == "new rate"


def test_the_contract_403_404_and_400_before_404(payroll):
    process = failed()
    bonus = task(process, "bonus")
    viewer = UserFactory(username="vera")
    assign_perm(VIEW, viewer, payroll)
    api = client_for(viewer)
    for verb in ("retry", "replay"):
        response = api.post(f"/api/tasks/{bonus.pk}/{verb}/", {"reason": "r"}, format="json")
        assert response.status_code == 403, verb
    skip = api.post(f"/api/tasks/{bonus.pk}/skip/", {"reason": "r"}, format="json")
    assert skip.status_code == 403
    stranger = client_for(UserFactory(username="nemo"))
    assert stranger.post(f"/api/tasks/{bonus.pk}/retry/", {}, format="json").status_code == 404
    assert stranger.post("/api/tasks/999999999/retry/", {}, format="json").status_code == 404
    # the body is checked first
    assert stranger.post("/api/tasks/999999999/skip/", {}, format="json").status_code == 400
    assert task(process, "bonus").state == TaskState.FAILED


# --- reassign ---------------------------------------------------------------------------------


def test_reassign_to_a_person_and_to_a_role(operator, payroll):
    process = failed()
    operator.post(
        f"/api/tasks/{task(process, 'bonus').pk}/skip/",
        {"reason": "r", "set": {"bonus.amount": "1.00", "bonus.currency": "EUR"}},
        format="json",
    )
    approval = task(process, "approve_bonus")
    UserFactory(username="carl", roles=["managers"])
    UserFactory(username="dora", roles=["directors"])
    url = f"/api/tasks/{approval.pk}/reassign/"
    response = operator.post(url, {"to_user": "carl", "reason": "bob is away"}, format="json")
    assert response.status_code == 200
    assert response.json()["task"]["assignee"] == "carl"
    event = events(process, EventType.TASK_REASSIGNED)[-1]
    assert (event.data["to"], event.data["reason"], event.actor_label, event.actor_type) == (
        "carl",
        "bob is away",
        "olga",
        "api",
    )
    assert operator.post(url, {"to_user": "carl", "reason": "x"}, format="json").status_code == 409
    response = operator.post(url, {"to_role": "directors", "reason": "audit"}, format="json")
    assert response.status_code == 200
    body = response.json()["task"]
    assert (body["role"], body["assignee"]) == ("directors", None)
    for payload, field in (
        ({"to_user": "ghost", "reason": "r"}, "to_user"),
        ({"to_role": "nobody", "reason": "r"}, "to_role"),
        ({"reason": "r"}, "to_user"),
        ({"to_user": "carl"}, "reason"),
    ):
        bad = operator.post(url, payload, format="json")
        assert bad.status_code == 400 and field in field_errors(bad), payload
    bonus = task(process, "bonus")
    not_human = operator.post(
        f"/api/tasks/{bonus.pk}/reassign/", {"to_user": "carl", "reason": "r"}, format="json"
    )
    assert not_human.status_code == 409


def test_reassign_keeps_separation_of_duties(operator, payroll):
    # the decision is about carl (not_by_var: employee): he may not be given it
    process = start("payroll", "E015-2026-11", input={"employee": "carl"})
    run_ready_steps(process)
    operator.post(
        f"/api/tasks/{task(process, 'bonus').pk}/skip/",
        {"reason": "r", "set": {"bonus.amount": "1.00", "bonus.currency": "EUR"}},
        format="json",
    )
    approval = task(process, "approve_bonus")
    UserFactory(username="carl", roles=["managers"])
    response = operator.post(
        f"/api/tasks/{approval.pk}/reassign/", {"to_user": "carl", "reason": "r"}, format="json"
    )
    assert response.status_code == 400
    assert "about them" in field_errors(response)["to_user"][0]
    assert task(process, "approve_bonus").assignee is None
