"""Reassigning an open human task (``engine.reassign_task``): to a person or a role, with a
reason, by an operator of the definition; separation of duties still holds."""

import pytest
from guardian.shortcuts import assign_perm

from processes import engine
from processes.errors import Conflict, Forbidden, InvalidInput, NotFound
from processes.events import Actor
from processes.models import EventType, TaskState
from processes.timeline import describe
from tests.factories import GroupFactory, UserFactory
from tests.test_authority_regressions import approval, salary_case, salary_data

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("test")
OPERATE = "processes.operate_process"


@pytest.fixture
def salary():
    return engine.definition_import(data=salary_data(), actor=SYSTEM)[0]


@pytest.fixture
def people(db):
    return {
        "bob": UserFactory(username="bob", roles=["managers"]),
        "carl": UserFactory(username="carl", roles=["managers"]),
        "olga": UserFactory(username="olga"),
        "e004": UserFactory(username="e004", roles=["managers"]),
    }


@pytest.fixture
def operator(salary, people):
    assign_perm(OPERATE, people["olga"], salary)
    return Actor.for_user(people["olga"])


def test_an_operator_gives_bobs_task_to_carl_with_a_reason(salary, people, operator):
    # given bob's approval, claimed by him
    task = approval(salary_case("E004", manager="bob"))
    engine.task_claim(task_id=task.pk, actor=Actor.for_user(people["bob"]))
    # when the operator reassigns it to carl
    engine.reassign_task(
        task_id=task.pk, actor=operator, to_user=people["carl"], reason="bob is on holiday"
    )
    # then carl holds it, bob's claim is gone, and the history says why
    task.refresh_from_db()
    assert (task.assignee, task.claimed_by, task.state) == (people["carl"], None, "scheduled")
    event = task.process.events.order_by("-seq").first()
    assert event.type == EventType.TASK_REASSIGNED
    assert event.actor_user == people["olga"]
    assert event.data == {
        "from": "bob",
        "from_role": "managers",
        "to": "carl",
        "to_role": "managers",
        "reason": "bob is on holiday",
    }
    assert describe(event) == "Approve bonus reassigned to carl — “bob is on holiday”"
    # carl decides it; bob no longer may
    with pytest.raises(Forbidden):
        engine.task_decide(task_id=task.pk, actor=Actor.for_user(people["bob"]), decision="approve")
    engine.task_decide(task_id=task.pk, actor=Actor.for_user(people["carl"]), decision="approve")
    task.refresh_from_db()
    assert task.state == TaskState.COMPLETED


def test_to_a_role_nobody_holds_it_and_the_role_may_claim(salary, people, operator):
    task = approval(salary_case("E004", manager="bob"))
    GroupFactory(name="directors")
    dora = UserFactory(username="dora", roles=["directors"])
    engine.reassign_task(task_id=task.pk, actor=operator, to_role="directors", reason="audit")
    task.refresh_from_db()
    assert (task.assignee, task.claimed_by, task.candidate_role) == (None, None, "directors")
    event = task.process.events.order_by("-seq").first()
    assert describe(event) == "Approve bonus reassigned to the role directors — “audit”"
    engine.task_claim(task_id=task.pk, actor=Actor.for_user(dora))
    task.refresh_from_db()
    assert task.claimed_by == dora


def test_separation_of_duties_still_holds(salary, people, operator):
    # the employee e004 is a manager too, but the decision is about them
    task = approval(salary_case("E004", manager="bob"))
    before = task.process.events.count()
    with pytest.raises(InvalidInput) as refused:
        engine.reassign_task(task_id=task.pk, actor=operator, to_user=people["e004"], reason="x")
    assert "about them" in refused.value.fields["to_user"][0]
    task.refresh_from_db()
    assert task.assignee == people["bob"]
    assert task.process.events.count() == before


def test_without_operate_process_it_is_refused(salary, people):
    task = approval(salary_case("E004", manager="bob"))
    with pytest.raises(Forbidden):
        engine.reassign_task(
            task_id=task.pk,
            actor=Actor.for_user(people["carl"]),
            to_user=people["carl"],
            reason="I'll do it",
        )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"to_role": "managers", "reason": " "}, "reason"),
        ({"reason": "r"}, "to_user"),
        ({"to_role": "nobody-has-this-role", "reason": "r"}, "to_role"),
    ],
)
def test_bad_input_names_the_field(salary, people, operator, kwargs, field):
    task = approval(salary_case("E004", manager="bob"))
    with pytest.raises(InvalidInput) as refused:
        engine.reassign_task(task_id=task.pk, actor=operator, **kwargs)
    assert field in refused.value.fields


def test_both_a_person_and_a_role_is_refused(salary, people, operator):
    task = approval(salary_case("E004", manager="bob"))
    with pytest.raises(InvalidInput) as refused:
        engine.reassign_task(
            task_id=task.pk, actor=operator, to_user=people["carl"], to_role="managers", reason="r"
        )
    assert "to_user" in refused.value.fields


def test_closed_service_and_repeated_reassignments_conflict(salary, people, operator):
    process = salary_case("E004", manager="bob")
    task = approval(process)
    with pytest.raises(Conflict):  # bob holds it already
        engine.reassign_task(task_id=task.pk, actor=operator, to_user=people["bob"], reason="r")
    with pytest.raises(Conflict):  # a service task
        engine.reassign_task(
            task_id=process.tasks.get(name="bonus").pk,
            actor=operator,
            to_user=people["carl"],
            reason="r",
        )
    engine.task_decide(task_id=task.pk, actor=Actor.for_user(people["bob"]), decision="approve")
    with pytest.raises(Conflict):  # decided
        engine.reassign_task(task_id=task.pk, actor=operator, to_user=people["carl"], reason="r")
    with pytest.raises(NotFound):
        engine.reassign_task(task_id=10**9, actor=operator, to_user=people["carl"], reason="r")


def test_the_system_may_reassign_for_an_absence(salary, people):
    task = approval(salary_case("E004", manager="bob"))
    engine.reassign_task(
        task_id=task.pk, actor=Actor.system("absence"), to_user=people["carl"], reason="absent"
    )
    task.refresh_from_db()
    assert task.assignee == people["carl"]
