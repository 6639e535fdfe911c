"""The tutorial's expense claim (docs/tutorial/first-process.md includes this file): the
definition and the handler of examples/expense/, against a real HTTP server on 127.0.0.1 as the
HR system. The steps run in this process, as a worker runs them (``worker.run_step``)."""

# --8<-- [start:setup]
import json
from pathlib import Path

import pytest
from guardian.shortcuts import assign_perm

import examples.expense.steps  # noqa: F401  registers expense.find_approver
from processes import engine, worker
from processes.errors import Forbidden
from processes.events import Actor
from processes.models import ProcessInstance
from tests.api.conftest import client_for
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
DEFINITION = Path(__file__).resolve().parents[2] / "examples" / "expense" / "expense.json"
CLAIM = {
    "employee_id": "E003",
    "amount": "120.50",
    "currency": "EUR",
    "reason": "Train to Lyon",
    "spent_on": "2026-11-14",
}


@pytest.fixture
def hr(httpserver, settings):
    """The HR system: a real HTTP server; its salary-base answer names the manager."""
    settings.FLOWDESK_ACCOUNTING_URL = httpserver.url_for("/hr")
    return httpserver


@pytest.fixture
def carol(db):
    """Publish the definition; carol may start claims."""
    definition, _ = engine.definition_import(
        data=json.loads(DEFINITION.read_text()), actor=Actor.system("test")
    )
    claimant = UserFactory(username="carol")
    assign_perm("processes.start_process", claimant, definition)  # who may start claims
    return claimant


@pytest.fixture
def claim(carol):
    """A claim carol started; returns (process, carol)."""
    process = engine.process_start(
        definition_key="expense",
        business_key="EXP-0001",
        input=CLAIM,
        actor=Actor.for_user(carol),
    ).process
    return process, carol


def run_step(process, name):
    """Run a scheduled service step the way a worker does."""
    worker.run_step(process.tasks.get(name=name).pk)
    process.refresh_from_db()


# --8<-- [end:setup]
# --8<-- [start:approved]
def test_the_manager_the_hr_system_names_approves_the_claim(hr, claim):
    process, _ = claim
    hr.expect_request("/hr/salary-base", method="POST").respond_with_json(
        {"employee_id": "E003", "manager": "alice", "employee_name": "Kasimir Corvell"}
    )
    alice = UserFactory(username="alice", roles=["managers"])

    run_step(process, "find_approver")
    approval = process.tasks.get(name="approve")
    assert approval.state == "scheduled" and approval.assignee == alice
    assert process.business_status == "AWAITING APPROVAL"  # the approval's waiting_status

    engine.task_decide(task_id=approval.pk, actor=Actor.for_user(alice), decision="approve")
    process.refresh_from_db()
    assert (process.state, process.business_status) == ("completed", "APPROVED")
    assert process.variables["approve"]["decided_by"] == "alice"


# --8<-- [end:approved]
# --8<-- [start:refused]
def test_a_claim_that_breaks_the_declared_input_is_refused_and_starts_nothing(carol):
    """The definition's input is checked before anything starts, here through the API."""
    bad = {**CLAIM, "amount": 120.5, "spent_on": "2026-02-30"}
    response = client_for(carol).post(
        "/api/processes/",
        {"definition": "expense", "business_key": "EXP-0002", "input": bad},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "input.amount": [
            'must be a decimal written as text, e.g. "409.32" (a JSON number with a fraction '
            "is a binary float)"
        ],
        "input.spent_on": ["must be a date YYYY-MM-DD"],
    }
    assert not ProcessInstance.objects.exists()


def test_a_good_claim_is_stored_as_declared(claim):
    process, _ = claim
    process.refresh_from_db()
    assert process.variables["amount"] == "120.50"  # a decimal with its 2 places, never a float
    assert process.business_status == "SUBMITTED"  # find_approver's waiting_status
    engine.process_start(
        definition_key="expense",
        business_key="EXP-0003",
        input={**CLAIM, "amount": "7", "reason": "Taxi\r\nto the station"},
        actor=Actor.system("test"),
    )
    other = ProcessInstance.objects.get(business_key="EXP-0003")
    assert (other.variables["amount"], other.variables["reason"]) == (
        "7.00",
        "Taxi\nto the station",
    )


# --8<-- [end:refused]
# --8<-- [start:rules]
def test_nobody_approves_their_own_claim(hr, claim):
    process, claimant = claim
    claimant.groups.add(*UserFactory(roles=["managers"]).groups.all())
    hr.expect_request("/hr/salary-base").respond_with_json({"manager": "carol"})
    run_step(process, "find_approver")

    with pytest.raises(Forbidden, match="You started this process"):
        engine.task_decide(
            task_id=process.tasks.get(name="approve").pk,
            actor=Actor.for_user(claimant),
            decision="approve",
        )


def test_an_hr_system_that_is_down_is_tried_again(hr, claim):
    process, _ = claim
    hr.expect_request("/hr/salary-base").respond_with_data("busy", status=503)

    run_step(process, "find_approver")
    step = process.tasks.get(name="find_approver")
    assert (step.state, step.attempts, process.state) == ("scheduled", 1, "running")
    assert "answered 503" in step.last_error


def test_an_answer_that_breaks_the_declared_result_never_reaches_the_manager(hr, claim):
    process, _ = claim
    hr.expect_request("/hr/salary-base").respond_with_json(
        {"manager": "alice", "employee_name": 42}
    )

    run_step(process, "find_approver")
    step = process.tasks.get(name="find_approver")
    assert (step.state, step.attempts) == ("scheduled", 1)  # a failed attempt, tried again
    assert step.last_error == (
        "the result of find_approver breaks its declaration: employee_name: must be text"
    )
    assert "find_approver" not in process.variables


def test_an_unknown_employee_is_an_incident_at_once(hr, claim):
    process, _ = claim
    hr.expect_request("/hr/salary-base").respond_with_json({"error": "no E003"}, status=404)

    run_step(process, "find_approver")
    assert process.state == "failed"  # an incident: an operator retries or skips it
    assert process.tasks.get(name="find_approver").attempts == 1


# --8<-- [end:rules]
