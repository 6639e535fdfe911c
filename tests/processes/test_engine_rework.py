"""Rework loops: a decision outcome sends the process back to an earlier stage, at most
``max_rounds`` rounds, every earlier execution kept, the decider's comment passed on."""

import pytest

from processes import diagram, engine, history, steps, worker
from processes.errors import InvalidInput
from processes.events import Actor
from processes.models import EventType, ProcessEvent, TaskRound, TaskState
from processes.spec import parse
from tests.conftest import DEFINITIONS
from tests.factories import UserFactory, definition_data

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("test")

REVIEW = {
    "task_name": "review",
    "task_type": "HUMAN",
    "assigned_to": "managers",
    "outcomes": {"approve": {}, "rework": {"goto": "CALC", "max_rounds": 3}},
    "form": [{"name": "hint", "type": "string"}],
}


def rework_definition(**review):
    return definition_data(
        "loop",
        stages=[
            ("CALC", [{"task_name": "calc", "handler": "test_rework.calc"}]),
            ("REVIEW", [{**REVIEW, **review}]),
            ("DONE", [{"task_name": "finish", "handler": "test_rework.calc"}]),
        ],
    )


@pytest.fixture
def calc():
    """A step handler that records what each run saw of the rework."""
    seen = []

    def handler(ctx):
        seen.append((ctx.task_name, ctx.idempotency_key, ctx.variables.get("rework")))
        return {"amount": 100 * len(seen)}

    steps.registry.register("test_rework.calc", handler)
    yield seen
    steps.registry.unregister("test_rework.calc")


@pytest.fixture
def loop(import_definition, calc):
    return import_definition(rework_definition())


@pytest.fixture
def mia():
    return UserFactory(username="mia", roles=["managers"])


def run_steps(process):
    for task in process.tasks.filter(state=TaskState.SCHEDULED).exclude(handler=""):
        worker.run_step(task.pk)


def decide(process, person, decision, comment="", **data):
    task = process.tasks.get(name="review")
    return engine.task_decide(
        task_id=task.pk, actor=Actor.for_user(person), decision=decision, comment=comment, data=data
    )


def test_rework_sends_the_process_back_with_the_comment_and_keeps_round_one(loop, calc, mia):
    process = engine.process_start(definition=loop, business_key="B1", actor=SYSTEM).process
    run_steps(process)
    # when the manager sends it back
    decide(process, mia, "rework", "count the Q3 project", hint="Q3")
    # then the calculation runs again, as round 2, and sees why
    process.refresh_from_db()
    calc_task = process.tasks.get(name="calc")
    review = process.tasks.get(name="review")
    assert process.current_stage == "CALC" and process.state == "running"
    assert (calc_task.state, calc_task.execution, calc_task.round) == ("scheduled", 2, 2)
    assert (review.state, review.execution, review.round) == ("pending", 2, 2)
    assert process.variables["rework"] == {
        "round": 2,
        "task": "review",
        "outcome": "rework",
        "comment": "count the Q3 project",
        "decided_by": "mia",
        "data": {"hint": "Q3"},
    }
    run_steps(process)
    assert calc[-1][2]["comment"] == "count the Q3 project"
    assert calc[0][1] != calc[-1][1]  # a new execution: a new idempotency key
    # round 1 is kept as it was: the calculation's result and the decision
    kept = {r.task_name: r for r in TaskRound.objects.filter(process=process)}
    assert set(kept) == {"calc", "review"}
    assert (kept["calc"].round, kept["calc"].execution, kept["calc"].result) == (
        1,
        1,
        {"amount": 100},
    )
    assert kept["review"].result["decision"] == "rework"
    assert kept["review"].decided_by == mia
    sent_back = ProcessEvent.objects.get(process=process, type=EventType.PROCESS_SENT_BACK)
    assert (sent_back.task_name, sent_back.data["goto"], sent_back.data["round"]) == (
        "review",
        "CALC",
        2,
    )
    # the new calculation is reviewed again, this time approved, and the process goes on
    process.refresh_from_db()
    assert process.tasks.get(name="review").state == "scheduled"
    decide(process, mia, "approve")
    run_steps(process)
    process.refresh_from_db()
    assert process.state == "completed"
    assert process.variables["calc"] == {"amount": 200}
    assert history.differences(process) == []


def test_rework_is_refused_once_the_rounds_are_used_up(loop, calc, mia):
    process = engine.process_start(definition=loop, business_key="B2", actor=SYSTEM).process
    for expected_round in (1, 2):
        run_steps(process)
        assert process.tasks.get(name="review").round == expected_round
        decide(process, mia, "rework", f"round {expected_round}")
    run_steps(process)
    # round 3 of 3: no more rework
    with pytest.raises(InvalidInput) as refused:
        decide(process, mia, "rework", "again")
    assert refused.value.fields == {
        "decision": ["'rework' is not possible any more: this is round 3 of at most 3"]
    }
    review = process.tasks.get(name="review")
    assert (review.state, review.round, review.execution) == ("scheduled", 3, 3)
    decide(process, mia, "approve")
    process.refresh_from_db()
    assert process.current_stage == "DONE"
    rounds = list(
        TaskRound.objects.filter(process=process).values_list("task_name", "round", "execution")
    )
    assert sorted(rounds) == [
        ("calc", 1, 1),
        ("calc", 2, 2),
        ("review", 1, 1),
        ("review", 2, 2),
    ]
    assert history.differences(process) == []


def test_the_api_shows_rounds_and_executions(loop, calc, mia, client):
    process = engine.process_start(definition=loop, business_key="B3", actor=SYSTEM).process
    run_steps(process)
    decide(process, mia, "rework", "why")
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    detail = client.get(f"/api/processes/{process.pk}/").json()
    assert {t["name"]: (t["execution"], t["round"]) for t in detail["tasks"]} == {
        "calc": (2, 2),
        "review": (2, 2),
        "finish": (1, 1),
    }
    rounds = client.get(f"/api/processes/{process.pk}/rounds/").json()["results"]
    assert [(r["task"], r["round"], r["decided_by"]) for r in rounds] == [
        ("calc", 1, None),
        ("review", 1, "mia"),
    ]
    assert rounds[1]["result"]["comment"] == "why"
    stranger = UserFactory(username="nobody")
    client.force_login(stranger)
    assert client.get(f"/api/processes/{process.pk}/rounds/").status_code == 404


def test_the_inbox_api_refuses_rework_past_the_limit_with_a_400(
    import_definition, calc, mia, client
):
    definition = import_definition(
        rework_definition(outcomes={"approve": {}, "rework": {"goto": "CALC", "max_rounds": 2}})
    )
    process = engine.process_start(definition=definition, business_key="B4", actor=SYSTEM).process
    run_steps(process)
    decide(process, mia, "rework")
    run_steps(process)
    client.force_login(mia)
    task = process.tasks.get(name="review")
    response = client.post(
        f"/api/tasks/{task.pk}/complete/", {"decision": "rework"}, content_type="application/json"
    )
    assert response.status_code == 400
    assert "round 2 of at most 2" in response.json()["error"]["fields"]["decision"][0]


@pytest.mark.parametrize(
    "outcomes,path,message",
    [
        ({"rework": {"goto": "NOPE"}}, "outcomes.rework.goto", "unknown stage 'NOPE'"),
        ({"rework": {"goto": "DONE"}}, "outcomes.rework.goto", "go back only"),
        ({"rework": {"goto": "CALC", "max_rounds": 1}}, "outcomes.rework.max_rounds", "from 2"),
        ({"rework": {"goto": "CALC", "max_rounds": "3"}}, "outcomes.rework.max_rounds", "whole"),
        ({"rework": {"goto": "CALC", "loops": 3}}, "outcomes.rework", "unknown option 'loops'"),
        ({"rework": {"max_rounds": 3}}, "outcomes.rework.max_rounds", "needs goto"),
        ({"rework": "CALC"}, "outcomes.rework", "must be an object"),
        ({"bad name": {}}, "outcomes.bad name", "identifier"),
    ],
)
def test_a_bad_rework_outcome_is_reported_at_its_path(outcomes, path, message):
    spec, errors = parse(rework_definition(outcomes=outcomes), known_handlers={"test_rework.calc"})
    assert spec is None
    assert any(e.path == f"stages[1].tasks[0].{path}" and message in e.message for e in errors), [
        str(e) for e in errors
    ]


def test_outcomes_as_a_list_still_work():
    data = rework_definition(outcomes=["approve", "reject"])
    spec, errors = parse(data, known_handlers={"test_rework.calc"})
    assert errors == [] and spec.task("review").outcomes == ("approve", "reject")
    assert spec.task("review").rework == ()


def test_the_diagram_draws_the_loop_back_to_its_stage(import_definition):
    import json

    salary = import_definition(json.loads((DEFINITIONS / "salary.json").read_text()))
    svg = diagram.render_definition(salary)
    assert 'data-from="approve_bonus" data-to="CALCULATE" data-outcome="rework"' in svg
    assert "rework: back to CALCULATE (≤ 3 rounds)" in svg
    plain = diagram.render_svg(
        parse(rework_definition(outcomes=["approve"]), known_handlers={"test_rework.calc"})[0]
    )
    assert 'class="loop"' not in plain


def test_the_admin_page_lists_earlier_rounds(loop, calc, mia, admin_client):
    process = engine.process_start(definition=loop, business_key="B5", actor=SYSTEM).process
    run_steps(process)
    decide(process, mia, "rework", "see the Q3 project")
    page = admin_client.get(
        f"/admin/processes/processinstance/{process.pk}/change/"
    ).content.decode()
    assert "Earlier rounds (rework)" in page
    assert 'data-round="1" data-task="review"' in page and "see the Q3 project" in page
    assert 'data-outcome="rework"' in page  # the diagram shows the loop
