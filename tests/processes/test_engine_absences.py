"""Absences: while a person is away, the tasks they would hold go to their substitute, or to the
task's role; separation of duties still holds, and the history says why."""

import datetime as dt

import pytest
from django.utils import timezone

from processes import authority, engine
from processes.errors import InvalidInput
from processes.events import Actor
from processes.models import Absence, EventType, ProcessEvent, TaskInstance
from tests.factories import UserFactory
from tests.tasks_inbox.conftest import approval_definition

pytestmark = pytest.mark.django_db


def today():
    return timezone.localdate()


@pytest.fixture
def people():
    return {
        "anna": UserFactory(username="anna", roles=["managers"]),
        "ben": UserFactory(username="ben", roles=["managers"]),
        "cleo": UserFactory(username="cleo", roles=["accountants"]),
    }


@pytest.fixture
def assigned(import_definition):
    """An approval whose task goes to the person named by the ``manager`` variable; the
    employee it is about may not decide it (``not_by_var``)."""
    data = approval_definition(assignee="manager")
    data["stages"][0]["tasks"][0]["not_by_var"] = ["employee"]
    import_definition(data)

    def _start(key="EMP-1", manager="anna", employee="emp"):
        process = engine.process_start(
            definition_key="approval",
            business_key=key,
            input={"employee": employee, "manager": manager, "bonus": 100},
            actor=Actor.system("test"),
        ).process
        return process.tasks.get(name="approve_bonus")

    return _start


def away(user, substitute=None, starts=0, ends=5):
    return engine.absence_record(
        actor=Actor.for_user(user),
        starts_on=today() + dt.timedelta(days=starts),
        ends_on=today() + dt.timedelta(days=ends),
        substitute=substitute,
    )


def rights(user, task):
    task.refresh_from_db()
    process = task.process
    return authority.task_rights(user, task, process=process, spec=process.definition.parsed())


def substituted(task):
    return ProcessEvent.objects.get(task_id=task.pk, type=EventType.TASK_SUBSTITUTED)


def test_a_new_task_of_an_absent_person_goes_to_their_substitute(people, assigned):
    away(people["anna"], substitute=people["ben"])

    task = assigned()

    task.refresh_from_db()
    assert (task.assignee, task.on_behalf_of) == (people["ben"], people["anna"])
    assert rights(people["ben"], task).decide
    assert not rights(people["anna"], task).decide
    event = substituted(task)
    assert event.data == {
        "absent": "anna",
        "until": (today() + dt.timedelta(days=5)).isoformat(),
        "to": "ben",
        "role": "",
        "refused": "",
    }


def test_without_a_substitute_the_task_goes_to_the_role(people, assigned):
    away(people["anna"])

    task = assigned()

    task.refresh_from_db()
    assert (task.assignee, task.on_behalf_of) == (None, people["anna"])
    assert rights(people["ben"], task).decide  # any manager
    assert substituted(task).data["role"] == "managers"


def test_separation_of_duties_still_holds_for_the_substitute(people, assigned):
    away(people["anna"], substitute=people["ben"])

    task = assigned(employee="ben")  # the bonus is about ben: he may not approve it

    task.refresh_from_db()
    assert task.assignee is None and task.on_behalf_of == people["anna"]
    data = substituted(task).data
    assert data["to"] is None and data["role"] == "managers"
    assert data["refused"] == "This decision is about them, so someone else must make it."
    assert not rights(people["ben"], task).decide


def test_a_substitute_outside_the_role_is_refused(people, assigned):
    away(people["anna"], substitute=people["cleo"])

    task = assigned()

    task.refresh_from_db()
    assert task.assignee is None
    assert substituted(task).data["refused"] == "cleo is not a member of managers"


def test_open_tasks_pass_on_when_an_absence_begins(people, assigned):
    held = assigned("EMP-1")
    later = away(people["anna"], substitute=people["ben"], starts=2, ends=4)
    held.refresh_from_db()
    assert held.assignee == people["anna"]  # not away yet

    assert engine.absences_apply(today=today() + dt.timedelta(days=1)) == 0
    assert engine.absences_apply(today=today() + dt.timedelta(days=2)) == 1
    assert engine.absences_apply(today=today() + dt.timedelta(days=2)) == 0  # once

    held.refresh_from_db()
    later.refresh_from_db()
    assert (held.assignee, held.on_behalf_of) == (people["ben"], people["anna"])
    assert later.applied_at is not None
    event = substituted(held)
    assert (event.actor_type, event.data["to"]) == ("system", "ben")


def test_an_absence_under_way_passes_open_tasks_on_when_it_is_saved(people, assigned):
    held = assigned("EMP-1")
    engine.task_claim(task_id=held.pk, actor=Actor.for_user(people["anna"]))

    away(people["anna"], substitute=people["ben"], starts=0, ends=1)

    held.refresh_from_db()
    assert (held.assignee, held.claimed_by, held.on_behalf_of) == (
        people["ben"],
        None,
        people["anna"],
    )
    assert substituted(held).actor_label == "anna"


def test_the_timer_sweep_hands_over_absences_that_began(people, assigned):
    held = assigned("EMP-1")
    absence = Absence.objects.create(
        user=people["anna"], starts_on=today(), ends_on=today(), substitute=people["ben"]
    )

    outcomes = engine.timers_sweep()

    assert outcomes.get("handed over (absence)") == 1
    held.refresh_from_db()
    absence.refresh_from_db()
    assert held.assignee == people["ben"] and absence.applied_at is not None


def test_no_delegation_to_someone_away(people, assigned):
    task = assigned(manager="")  # the role's
    away(people["ben"])

    with pytest.raises(InvalidInput) as refused:
        engine.task_delegate(
            task_id=task.pk, actor=Actor.for_user(people["anna"]), to_user=people["ben"]
        )

    assert refused.value.fields == {
        "to": [f"ben is away until {(today() + dt.timedelta(days=5)).isoformat()}"]
    }


@pytest.mark.parametrize(
    ("starts", "ends", "substitute", "field", "message"),
    [
        (3, 1, None, "ends_on", "must be on or after the first day"),
        (-5, -1, None, "ends_on", "is in the past: record absences to come or under way"),
        ("soon", 1, None, "starts_on", "must be a date YYYY-MM-DD"),
        (0, 1, "self", "substitute", "choose someone else: you are the one away"),
        (1, 2, None, "starts_on", "overlaps your absence from"),
    ],
)
def test_a_bad_absence_is_refused_naming_the_field(
    people, starts, ends, substitute, field, message
):
    anna = people["anna"]
    if field == "starts_on" and starts == 1:
        away(anna, starts=0, ends=1)

    def day(offset):
        return offset if isinstance(offset, str) else today() + dt.timedelta(days=offset)

    with pytest.raises(InvalidInput) as refused:
        engine.absence_record(
            actor=Actor.for_user(anna),
            starts_on=day(starts),
            ends_on=day(ends),
            substitute=anna if substitute == "self" else None,
        )

    assert refused.value.fields[field][0].startswith(message)


def test_ending_an_absence_keeps_handed_over_tasks_where_they_went(people, assigned):
    absence = away(people["anna"], substitute=people["ben"])
    task = assigned()

    engine.absence_end(actor=Actor.for_user(people["anna"]), absence_id=absence.pk)

    absence.refresh_from_db()
    assert absence.ends_on == today()
    assert TaskInstance.objects.get(pk=task.pk).assignee == people["ben"]
    future = away(people["anna"], starts=3, ends=4)
    engine.absence_end(actor=Actor.for_user(people["anna"]), absence_id=future.pk)
    assert not Absence.objects.filter(pk=future.pk).exists()
