"""The seed workflow manager's semantics, step by step, through the engine services."""

import uuid

import pytest

from processes import engine
from processes.errors import Conflict, InvalidInput, NotFound
from processes.models import EventType, ProcessEvent, ProcessInstance, TaskInstance
from tests.conftest import task_states
from tests.factories import UserFactory, definition_data
from tests.test_helpers import deliver

pytestmark = pytest.mark.django_db


def seed_event(name, task=None, ref="ORDER-001", actor=None, **kw):
    from processes.events import Actor

    return engine.handle_seed_event(
        event_name=name,
        business_ref_no=ref,
        component_name="ITALIAN",
        task_name=task,
        actor=actor or Actor.api(label="test-client"),
        **kw,
    )


def scheduled(process):
    return sorted(n for n, s in task_states(process).items() if s == "scheduled")


def test_pizza_runs_as_the_seed_describes(pizza):
    # given a started order
    outcome = seed_event("StartWorkflow")
    process = outcome.process
    assert outcome.created
    # the empty START stage closes at once and ORDER begins
    assert process.current_stage == "ORDER"
    assert scheduled(process) == ["confirm_order"]

    # when the order is confirmed, both PREPARE tasks run in parallel, the join waits
    seed_event("TaskCompleted", "confirm_order")
    process.refresh_from_db()
    assert process.business_status == "ORDER CONFIRMED"
    assert process.current_stage == "PREPARE"
    assert scheduled(process) == ["assign_executive", "make_food"]

    seed_event("TaskCompleted", "make_food")
    process.refresh_from_db()
    assert scheduled(process) == ["assign_executive"]
    assert task_states(process)["confirm_delivery"] == "pending"

    seed_event("TaskCompleted", "assign_executive")
    process.refresh_from_db()
    assert scheduled(process) == ["confirm_delivery"]

    seed_event("TaskCompleted", "confirm_delivery")
    process.refresh_from_db()
    assert process.business_status == "FOOD ON THE WAY"
    assert process.current_stage == "DELIVER"
    delivery = process.tasks.get(name="deliver_food")
    assert delivery.state == "scheduled" and delivery.candidate_role == "delivery_executive"

    # the HUMAN task is decided by a person, never by a seed event
    seq = process.last_seq
    with pytest.raises(Conflict, match="human tasks are decided in the inbox"):
        seed_event("TaskCompleted", "deliver_food")
    process.refresh_from_db()
    assert process.last_seq == seq and task_states(process)["deliver_food"] == "scheduled"
    deliver(process)
    process.refresh_from_db()
    assert process.state == "completed"
    assert process.business_status == "FOOD DELIVERED"
    assert process.completed_at is not None
    types = list(process.events.values_list("type", flat=True))
    assert types[0] == "process_started" and types[-1] == "process_completed"
    assert list(process.events.values_list("seq", flat=True)) == list(range(1, len(types) + 1))


def test_start_task_payload_is_the_seeds(pizza):
    process = seed_event("StartWorkflow").process
    event = process.events.get(type=EventType.TASK_SCHEDULED, task_name="confirm_order")
    assert event.data["payload"] == {
        "business_ref_no": "ORDER-001",
        "component_name": "ITALIAN",
        "event_name": "StartTask",
        "stage_name": "ORDER",
        "task_name": "confirm_order",
        "task_type": "SERVICE",
        "task_queue": "confirm_order_queue",
    }


def test_same_business_key_while_active_returns_the_same_instance(pizza, system_actor):
    first = engine.process_start(definition_key="pizza", business_key="K1", actor=system_actor)
    again = engine.process_start(definition_key="pizza", business_key="K1", actor=system_actor)
    assert first.created and not again.created
    assert again.process.pk == first.process.pk
    assert ProcessInstance.objects.count() == 1


def test_duplicate_completion_is_recorded_and_changes_nothing(pizza):
    process = seed_event("StartWorkflow").process
    seed_event("TaskCompleted", "confirm_order")
    before = task_states(process)

    outcome = seed_event("TaskCompleted", "confirm_order")

    assert outcome.duplicate
    assert task_states(process) == before
    assert process.events.filter(type=EventType.TASK_DUPLICATE).count() == 1
    assert process.events.filter(type=EventType.TASK_SCHEDULED, task_name="make_food").count() == 1


def test_out_of_order_completion_is_a_conflict(pizza):
    process = seed_event("StartWorkflow").process
    with pytest.raises(Conflict, match="it is pending"):
        seed_event("TaskCompleted", "confirm_delivery")
    assert task_states(process)["confirm_delivery"] == "pending"


def test_failed_task_is_an_incident_until_retried(pizza):
    process = seed_event("StartWorkflow").process
    seed_event("TaskFailed", "confirm_order", error="oven broken")
    process.refresh_from_db()
    assert process.state == "failed"
    task = process.tasks.get(name="confirm_order")
    assert task.state == "failed" and task.last_error == "oven broken"

    # a failed task stays failed: completing it is refused, not silently accepted
    with pytest.raises(Conflict):
        seed_event("TaskCompleted", "confirm_order")

    seed_event("TaskPending", "confirm_order")
    process.refresh_from_db()
    assert process.state == "running"
    assert task_states(process)["confirm_order"] == "scheduled"

    seed_event("TaskCompleted", "confirm_order")
    process.refresh_from_db()
    assert process.business_status == "ORDER CONFIRMED"
    types = list(process.events.values_list("type", flat=True))
    assert (
        types.index("process_failed") < types.index("task_retried") < types.index("process_resumed")
    )


def test_event_data_lands_under_the_tasks_own_name_only(pizza):
    process = seed_event("StartWorkflow", data={"customer": "ann"}).process
    seed_event("TaskCompleted", "confirm_order", data={"eta_minutes": 25, "customer": "eve"})
    process.refresh_from_db()
    # the input and every other variable stay as they were: the result is the task's own
    assert process.variables == {
        "customer": "ann",
        "confirm_order": {"eta_minutes": 25, "customer": "eve"},
    }


def test_unknown_things_are_clear_errors(pizza):
    with pytest.raises(NotFound):
        seed_event("TaskCompleted", "confirm_order", ref="NOPE")
    seed_event("StartWorkflow")
    with pytest.raises(NotFound, match="no task 'bake'"):
        seed_event("TaskCompleted", "bake")
    with pytest.raises(InvalidInput, match="stage"):
        seed_event("TaskCompleted", "confirm_order", stage_name="DELIVER")
    with pytest.raises(InvalidInput):
        seed_event("Explode", "confirm_order")


def branching_definition():
    return definition_data(
        key="branching",
        stages=[
            (
                "DECIDE",
                [
                    {
                        "task_name": "review",
                        "task_type": "HUMAN",
                        "assigned_to": "reviewers",
                        "outcomes": ["approve", "reject"],
                        "form": [{"name": "amount", "type": "decimal", "min": 0, "required": True}],
                    }
                ],
            ),
            (
                "ACT",
                [
                    {
                        "task_name": "pay",
                        "condition": {"var": "review.decision", "op": "eq", "value": "approve"},
                        "business_status": "PAID",
                    },
                    {
                        "task_name": "tell_no",
                        "condition": {"var": "review.decision", "op": "eq", "value": "reject"},
                        "business_status": "REJECTED",
                    },
                    {"task_name": "after_pay", "parent_task": ["pay"]},
                ],
            ),
        ],
    )


@pytest.mark.parametrize(
    ("decision", "run", "skip"),
    [("approve", ["pay"], ["tell_no"]), ("reject", ["tell_no"], ["pay"])],
)
def test_conditions_skip_tasks(import_definition, system_actor, decision, run, skip):
    from processes.events import Actor

    import_definition(branching_definition())
    reviewer = UserFactory(roles=["reviewers"])
    process = engine.process_start(
        definition_key="branching", business_key="B1", actor=system_actor
    ).process
    review = process.tasks.get(name="review")

    engine.task_decide(
        task_id=review.pk,
        actor=Actor.for_user(reviewer),
        decision=decision,
        comment="ok",
        data={"amount": "12.5"},
    )

    process.refresh_from_db()
    assert process.variables["review"]["decision"] == decision
    assert process.variables["review"]["amount"] == "12.5"  # a decimal: canonical text
    states = task_states(process)
    assert all(states[n] == "scheduled" for n in run)
    assert all(states[n] == "skipped" for n in skip)
    # a child of a skipped task is ready: skipped counts as done
    if decision == "reject":
        assert states["after_pay"] == "scheduled"
        engine.task_complete(task_id=process.tasks.get(name="tell_no").pk, actor=system_actor)
        engine.task_complete(task_id=process.tasks.get(name="after_pay").pk, actor=system_actor)
        process.refresh_from_db()
        assert process.state == "completed" and process.business_status == "REJECTED"


def test_decision_is_validated_against_outcomes_and_form(import_definition, system_actor):
    from processes.events import Actor

    import_definition(branching_definition())
    reviewer = UserFactory(roles=["reviewers"])
    process = engine.process_start(
        definition_key="branching", business_key="B2", actor=system_actor
    ).process
    review = process.tasks.get(name="review")

    with pytest.raises(InvalidInput) as exc:
        engine.task_decide(
            task_id=review.pk,
            actor=Actor.for_user(reviewer),
            decision="maybe",
            data={"amount": "-3", "colour": "red"},
        )

    assert exc.value.fields == {
        "decision": ["must be one of: approve, reject"],
        "data.amount": ["must be at least 0"],
        "data.colour": ["unknown field"],
    }
    assert TaskInstance.objects.get(pk=review.pk).state == "scheduled"


def test_second_decision_gets_a_conflict_and_is_recorded(import_definition, system_actor):
    from processes.events import Actor

    import_definition(branching_definition())
    ann, bob = UserFactory(roles=["reviewers"]), UserFactory(roles=["reviewers"])
    process = engine.process_start(
        definition_key="branching", business_key="B3", actor=system_actor
    ).process
    review = process.tasks.get(name="review")
    engine.task_decide(
        task_id=review.pk, actor=Actor.for_user(ann), decision="approve", data={"amount": 1}
    )

    with pytest.raises(Conflict, match=f"already completed by {ann.username}"):
        engine.task_decide(
            task_id=review.pk, actor=Actor.for_user(bob), decision="reject", data={"amount": 1}
        )

    process.refresh_from_db()
    assert process.variables["review"]["decision"] == "approve"
    dup = ProcessEvent.objects.get(process=process, type=EventType.TASK_DUPLICATE)
    assert dup.actor_user == bob


def test_published_definition_is_immutable_and_running_instances_keep_their_version(
    import_definition, system_actor
):
    from processes.models import ImmutableError

    v1 = import_definition(definition_data(key="versioned"))
    process = engine.process_start(
        definition_key="versioned", business_key="V", actor=system_actor
    ).process
    v1.spec = {**v1.spec, "description": "changed"}
    with pytest.raises(ImmutableError):
        v1.save()

    changed = definition_data(key="versioned", description="v2")
    v2 = import_definition(changed)
    again = import_definition(changed)

    assert (v1.version, v2.version, again.pk) == (1, 2, v2.pk)
    process.refresh_from_db()
    assert process.definition_id == v1.pk
    newer = engine.process_start(
        definition_key="versioned", business_key="V2", actor=system_actor
    ).process
    assert newer.definition_id == v2.pk


def test_a_task_id_no_database_could_hold_is_not_found(pizza):
    # ids come from URLs and payloads: past bigint they are "not found", never a database error
    for task_id in (2**63, -(2**63) - 1, "12a", None):
        with pytest.raises(NotFound):
            engine.task_claim(task_id=task_id, actor=engine.SYSTEM)


def test_a_write_to_a_row_that_is_gone_fails_loudly(pizza):
    # the engine updates rows it holds locked; one that vanished anyway must not pass unnoticed
    from django.db import DatabaseError

    from processes.db import core

    process = seed_event("StartWorkflow").process
    ProcessInstance.objects.filter(pk=process.pk).update(business_status="seen")
    process.business_status = "written"
    core.update_row(process, ["business_status"])
    assert ProcessInstance.objects.get(pk=process.pk).business_status == "written"
    ghost = ProcessInstance(pk=uuid.uuid4(), definition=process.definition)
    with pytest.raises(DatabaseError, match="matched 0 rows"):
        core.update_row(ghost, ["business_status"])
