"""``waiting_status``: the business status a task sets when it is scheduled (what the case waits
for), beside ``business_status`` (set when it completes)."""

import json

import pytest
from django.urls import reverse

from processes import engine, history, spec
from processes.events import Actor
from processes.models import EventType, ProcessEvent
from tests.conftest import DEFINITIONS
from tests.factories import complete_task, definition_data

SYSTEM = Actor.system("test")


def review_definition(key="review", **review_extra):
    return definition_data(
        key,
        stages=[
            (
                "PREPARE",
                [
                    {
                        "task_name": "prepare",
                        "task_queue": "prep",
                        "waiting_status": "PREPARING",
                        "business_status": "PREPARED",
                    }
                ],
            ),
            (
                "DECIDE",
                [
                    {
                        "task_name": "review",
                        "task_type": "HUMAN",
                        "assigned_to": "managers",
                        "waiting_status": "AWAITING APPROVAL",
                        "business_status": "REVIEWED",
                        **review_extra,
                    }
                ],
            ),
        ],
    )


def parse_errors(data) -> list[str]:
    return [str(e) for e in spec.parse(data, known_handlers=None)[1]]


def test_the_field_parses_and_a_seed_template_without_it_is_unchanged():
    parsed = spec.parse_or_raise(review_definition(), known_handlers=None)
    assert parsed.task("review").waiting_status == "AWAITING APPROVAL"
    assert parsed.task("review").business_status == "REVIEWED"
    pizza = spec.parse_or_raise(json.loads((DEFINITIONS / "pizza.json").read_text()))
    assert all(t.waiting_status is None for t in pizza.tasks)
    assert "waiting_status" not in pizza.task("confirm_order").extra


@pytest.mark.parametrize("value", ["", "   ", 42, ["A"], "x" * 201])
def test_a_bad_waiting_status_is_refused_with_its_path(value):
    errors = parse_errors(review_definition(waiting_status=value))
    assert errors == [
        "stages[1].tasks[0].waiting_status: must be a non-empty string of at most 200 characters"
    ]


def test_an_inline_step_has_no_waiting_status():
    data = definition_data(
        "calc",
        stages=[
            (
                "A",
                [
                    {
                        "task_name": "add",
                        "handler": "flowdesk.noop",
                        "inline": True,
                        "waiting_status": "ADDING",
                    }
                ],
            )
        ],
    )
    assert parse_errors(data) == [
        "stages[0].tasks[0].waiting_status: an inline step never waits: it has no waiting status"
    ]


@pytest.mark.django_db
def test_the_status_is_set_in_the_transaction_that_opens_the_task(import_definition):
    import_definition(review_definition())
    process = engine.process_start(definition_key="review", business_key="R-1", actor=SYSTEM)
    process = process.process
    process.refresh_from_db()
    assert process.business_status == "PREPARING"  # the external step is waiting

    prepare = process.tasks.get(name="prepare")
    complete_task(prepare, {"ok": True})
    process.refresh_from_db()
    # the completion's status was set, then the review task opened: the case waits for it
    assert process.business_status == "AWAITING APPROVAL"
    scheduled = ProcessEvent.objects.get(
        process=process, task_name="review", type=EventType.TASK_SCHEDULED
    )
    completed = ProcessEvent.objects.get(
        process=process, task_name="prepare", type=EventType.TASK_COMPLETED
    )
    assert scheduled.correlation_id == completed.correlation_id  # the same transaction
    assert history.differences(process) == []  # the events rebuild it

    complete_task(process.tasks.get(name="review"))
    process.refresh_from_db()
    assert (process.state, process.business_status) == ("completed", "REVIEWED")
    assert history.differences(process) == []


@pytest.mark.django_db
def test_the_point_in_time_state_shows_the_waiting_status(import_definition):
    import_definition(review_definition())
    process = engine.process_start(definition_key="review", business_key="R-2", actor=SYSTEM)
    process = process.process
    first = ProcessEvent.objects.filter(process=process).order_by("seq").last()
    point = history.state_at(process, first.created_at)
    assert point.snapshot.business_status == "PREPARING"


@pytest.mark.django_db
def test_the_admin_filter_offers_waiting_statuses(import_definition, admin_client):
    import_definition(review_definition())
    page = admin_client.get(reverse("admin:processes_processinstance_changelist")).content
    for status in (b"PREPARING", b"AWAITING APPROVAL", b"REVIEWED"):
        assert b"business_status=" + status.replace(b" ", b"+") in page


def test_the_shipped_definitions_say_what_the_case_waits_for():
    salary = spec.parse_or_raise(json.loads((DEFINITIONS / "salary.json").read_text()))
    assert salary.task("salary_base").waiting_status == "CALCULATING"
    assert salary.task("bonus").waiting_status == "CALCULATING"
    assert salary.task("approve_bonus").waiting_status == "AWAITING APPROVAL"
    assert salary.task("record_payout").waiting_status == "AWAITING PAYOUT"
    assert salary.task("record_payout").business_status == "PAID"
    run = spec.parse_or_raise(
        json.loads((DEFINITIONS / "salary_run.json").read_text()), known_handlers=None
    )
    assert run.task("salaries").waiting_status == "PAYING"
    assert run.task("close_run").business_status == "CLOSED"
