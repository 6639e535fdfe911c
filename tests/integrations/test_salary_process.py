"""The salary reference process through the engine, its handlers calling the simulators over HTTP.

The steps run in this process (``worker.run_step``) against the simulators under a live server;
``test_salary_e2e.py`` runs the same story with a real qcluster subprocess.
"""

import datetime as dt

import pytest
from django.utils import timezone

from integrations import alerts
from integrations.models import SimulatorCall, SimulatorNotice, SimulatorPayout
from integrations.simulators import directory
from processes import engine, history, worker
from processes.errors import InvalidInput
from processes.events import Actor
from processes.models import EventType, ProcessInstance, TaskState
from processes.spec import parse_or_raise
from tests.conftest import DEFINITIONS, task_states
from tests.factories import UserFactory
from tests.integrations.conftest import salary_test_definition, start_salary

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def people():
    return {
        "alice": UserFactory(username="alice", roles=["managers"]),
        "bob": UserFactory(username="bob", roles=["managers"]),
        "diana": UserFactory(username="diana", roles=["directors"]),
    }


@pytest.fixture
def live(live_server, simulators_on, settings, salary_test):
    settings.FLOWDESK_ACCOUNTING_URL = f"{live_server.url}/simulators/accounting"
    settings.FLOWDESK_BONUS_URL = f"{live_server.url}/simulators/bonus"
    settings.FLOWDESK_SMS_BACKEND = "integrations.sms.backends.locmem.SmsBackend"
    return live_server.url


def run_ready(process):
    """Run every scheduled service step once, as a worker would."""
    ran = []
    for task in process.tasks.filter(state=TaskState.SCHEDULED).exclude(handler=""):
        ran.append((task.name, worker.run_step(task.pk)))
    process.refresh_from_db()
    return ran


def test_the_reference_definition_is_valid_and_shaped_like_design_4():
    import json

    spec = parse_or_raise(json.loads((DEFINITIONS / "salary.json").read_text()))

    assert [s.name for s in spec.stages] == ["CALCULATE", "APPROVE", "PAYOUT"]
    calc = spec.stage("CALCULATE").tasks
    assert [(t.name, t.handler, t.parents) for t in calc] == [
        ("salary_base", "accounting.salary_base", ()),
        ("bonus", "bonus.compute", ()),
    ]  # no parents: they run in parallel
    assert all(t.retry.max_attempts > 1 and t.timeout for t in calc)
    approve = spec.task("approve_bonus")
    assert (approve.type, approve.assigned_to, approve.assignee) == (
        "HUMAN",
        "managers",
        "salary_base.manager",
    )
    assert approve.outcomes == ("approve", "reject", "rework")
    assert approve.escalation.to_role == "directors"
    [loop] = approve.rework  # the manager may send the bonus back to the calculation
    assert (loop.outcome, loop.goto, loop.max_rounds) == ("rework", "CALCULATE", 3)
    assert spec.task("record_payout").condition["value"] == "approve"
    assert spec.task("notify_rejection").condition["value"] == "reject"


def test_approved_bonus_is_paid_once_with_the_adjusted_amount(live, people):
    process = start_salary("E001")

    assert sorted(run_ready(process)) == [("bonus", "completed"), ("salary_base", "completed")]
    approval = process.tasks.get(name="approve_bonus")
    assert approval.state == TaskState.SCHEDULED
    assert approval.assignee == people["alice"]  # E001's manager, named by the accounting system
    assert approval.candidate_role == "managers"
    assert process.variables["salary_base"]["manager"] == "alice"
    # the business status says what the case waits for: the manager's approval
    assert process.business_status == "AWAITING APPROVAL"

    engine.task_decide(
        task_id=approval.pk,
        actor=Actor.for_user(people["alice"]),
        decision="approve",
        comment="well done",
        data={"adjusted_amount": "500"},
    )
    process.refresh_from_db()
    assert task_states(process)["notify_rejection"] == TaskState.SKIPPED
    assert process.business_status == "AWAITING PAYOUT"  # set as the payout step was scheduled
    run_ready(process)

    assert process.state == "completed" and process.business_status == "PAID"
    payout = SimulatorPayout.objects.get(employee_id="E001")
    employee = directory.find("E001")
    assert payout.bonus == 500 and payout.salary_base == employee.salary_base
    assert process.variables["record_payout"]["total"] == str(payout.total)
    assert history.differences(process) == []


def test_a_bonus_sent_back_is_computed_again_with_the_managers_comment(live, people):
    process = start_salary("E001")
    run_ready(process)
    first_bonus = process.variables["bonus"]
    approval = process.tasks.get(name="approve_bonus")
    # when the manager sends it back for rework with a comment
    engine.task_decide(
        task_id=approval.pk,
        actor=Actor.for_user(people["alice"]),
        decision="rework",
        comment="include the Q3 project",
    )
    process.refresh_from_db()
    assert process.current_stage == "CALCULATE"
    assert process.business_status == "CALCULATING"  # the new round's steps are scheduled
    assert sorted(run_ready(process)) == [("bonus", "completed"), ("salary_base", "completed")]
    # then the bonus system computed it again, and says it saw the comment
    assert process.variables["bonus"]["review"] == {"round": 2, "comment": "include the Q3 project"}
    assert process.variables["bonus"]["amount"] == first_bonus["amount"]
    calls = SimulatorCall.objects.filter(endpoint="compute").count()
    assert calls == 2  # a new execution, a new idempotency key: not a replay of round 1
    # round 2 is approved and paid once
    approval = process.tasks.get(name="approve_bonus")
    assert (approval.state, approval.round, approval.assignee) == ("scheduled", 2, people["alice"])
    engine.task_decide(
        task_id=approval.pk, actor=Actor.for_user(people["alice"]), decision="approve"
    )
    run_ready(process)
    assert process.state == "completed" and process.business_status == "PAID"
    assert SimulatorPayout.objects.filter(employee_id="E001").count() == 1
    kept = process.rounds.order_by("id").values_list("task_name", "round")
    assert list(kept) == [("salary_base", 1), ("bonus", 1), ("approve_bonus", 1)]
    assert history.differences(process) == []


def test_a_payout_sent_twice_is_recorded_once(live, people, monkeypatch):
    process = start_salary("E001")
    run_ready(process)
    approval = process.tasks.get(name="approve_bonus")
    engine.task_decide(
        task_id=approval.pk, actor=Actor.for_user(people["alice"]), decision="approve"
    )
    payout_task = process.tasks.get(name="record_payout")
    context = engine.task_start(task_id=payout_task.pk, actor=Actor.worker()).context

    from integrations.steps import record_payout

    first = record_payout(context)  # the worker died before reporting...
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + dt.timedelta(minutes=10))
    assert worker.run_step(payout_task.pk) == "completed"  # ...its lease expired: run again

    process.refresh_from_db()
    assert process.variables["record_payout"] == first
    assert SimulatorPayout.objects.filter(employee_id="E001").count() == 1
    replays = SimulatorCall.objects.filter(endpoint="payouts", replayed=True)
    assert replays.count() == 1


def test_rejected_bonus_notifies_and_pays_nothing(live, people):
    process = start_salary("E002")
    run_ready(process)
    approval = process.tasks.get(name="approve_bonus")
    assert approval.assignee == people["bob"]

    engine.task_decide(
        task_id=approval.pk,
        actor=Actor.for_user(people["bob"]),
        decision="reject",
        comment="not this year",
    )
    process.refresh_from_db()
    run_ready(process)

    assert process.state == "completed" and process.business_status == "BONUS REJECTED"
    assert task_states(process)["record_payout"] == TaskState.SKIPPED
    assert task_states(process)["notify_rejection"] == TaskState.COMPLETED
    assert not SimulatorPayout.objects.exists()
    notice = SimulatorNotice.objects.get()
    assert (notice.employee_id, notice.decided_by, notice.comment) == (
        "E002",
        "bob",
        "not this year",
    )


def test_a_decision_outside_the_outcomes_or_form_is_refused(live, people):
    process = start_salary("E001")
    run_ready(process)
    approval = process.tasks.get(name="approve_bonus")

    with pytest.raises(InvalidInput) as error:
        engine.task_decide(
            task_id=approval.pk,
            actor=Actor.for_user(people["alice"]),
            decision="maybe",
            data={"adjusted_amount": "-3"},
        )
    assert set(error.value.fields) == {"decision", "data.adjusted_amount"}


def test_bad_input_is_refused_at_the_start_naming_each_field(live, people):
    # given the salary definition, which declares its input
    # when it is started without an employee and with a bad period
    with pytest.raises(InvalidInput) as refused:
        engine.process_start(
            definition_key="salary-test",
            business_key="nobody",
            input={"period": "2026-13"},
            actor=Actor.system("t"),
        )

    # then nothing starts (no step runs only to fail), and each field says what is wrong
    assert refused.value.fields == {
        "input.employee_id": ["this field is required"],
        "input.period": ["must match the pattern \\d{4}-(0[1-9]|1[0-2])"],
    }
    assert not ProcessInstance.objects.filter(business_key="nobody").exists()


def test_an_unknown_bonus_plan_is_an_incident_with_the_remote_message(live, people):
    from integrations.models import AlertRecipient
    from integrations.sms.backends import locmem

    locmem.outbox.clear()
    admin = UserFactory(username="admin", is_staff=True)
    AlertRecipient.objects.create(user=admin, phone="+33612345678")
    process = start_salary("E013")

    run_ready(process)

    assert process.state == "failed"
    bonus = process.tasks.get(name="bonus")
    assert bonus.state == TaskState.FAILED and bonus.attempts == 1  # a 4xx is not retried
    assert "(404): employee E013 has no bonus plan" in bonus.last_error
    (sms,) = locmem.outbox
    assert "task bonus failed" in sms.body and alerts.process_link(process.pk) in sms.body
    assert process.events.filter(type=EventType.NOTIFICATION_SENT).count() == 1


def test_the_test_definition_only_shortens_timers():
    import json

    reference = json.loads((DEFINITIONS / "salary.json").read_text())
    test = salary_test_definition()
    assert [t["task_name"] for s in test["stages"] for t in s["tasks"]] == [
        t["task_name"] for s in reference["stages"] for t in s["tasks"]
    ]
