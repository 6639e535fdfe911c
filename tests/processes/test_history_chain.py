"""The live event log proves itself: each event's hash covers the previous one's and its own
content; ``verify_history`` names the first broken link when an event is changed or removed
behind the application's back (as the tables' owner, past the append-only trigger)."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from processes import engine
from processes.events import chain
from processes.models import ProcessEvent
from tests.factories import complete_task, definition_data

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


@pytest.fixture
def finished(import_definition, system_actor, postgres):
    import_definition(
        definition_data(
            "chained",
            stages=[
                ("ONE", [{"task_name": "first", "task_queue": "q"}]),
                ("TWO", [{"task_name": "second", "task_queue": "q"}]),
            ],
        )
    )
    process = engine.process_start(
        definition_key="chained", business_key="C-1", actor=system_actor
    ).process
    complete_task(process.tasks.get(name="first"), {"amount": 1.5, "big": 1e20})
    complete_task(process.tasks.get(name="second"), {"note": "é ✓"})
    process.refresh_from_db()
    return process


def as_the_tables_owner(sql, params):
    """Past the append-only trigger, as only the owner of the tables can."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # (no pending trigger events: ALTER)
        cursor.execute("ALTER TABLE processes_processevent DISABLE TRIGGER USER")
        cursor.execute(sql, params)
        cursor.execute("ALTER TABLE processes_processevent ENABLE TRIGGER USER")


def verify() -> str:
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("verify_history", stdout=out)
    return out.getvalue()


def test_every_event_is_linked_to_the_one_before(finished):
    events = list(finished.events.order_by("seq"))
    assert all(len(e.hash) == 64 for e in events)
    assert chain.first_broken(events) is None
    assert finished.last_hash == events[-1].hash
    out = io.StringIO()
    call_command("verify_history", stdout=out)
    assert "0 differ" in out.getvalue()


def test_an_edited_event_is_named_as_the_first_broken_link(finished):
    event = finished.events.get(type="task_completed", task_name="first")
    as_the_tables_owner(
        "UPDATE processes_processevent SET data = %s WHERE id = %s",
        ['{"result": {"amount": 150, "big": 1e20}}', event.pk],
    )
    said = verify()
    assert f"event #{event.seq} (task_completed): hash chain broken" in said
    assert said.count("hash chain broken") == 1  # the first broken link only


def test_a_removed_event_is_found(finished):
    middle = finished.events.get(type="stage_started", data__stage="TWO")
    as_the_tables_owner("DELETE FROM processes_processevent WHERE id = %s", [middle.pk])
    assert f"event #{middle.seq}: missing" in verify()


def test_a_removed_last_event_is_found(finished):
    last = finished.events.order_by("-seq").first()
    as_the_tables_owner("DELETE FROM processes_processevent WHERE id = %s", [last.pk])
    assert f"events after #{last.seq - 1}: missing" in verify()


def test_the_archive_carries_the_chain(finished):
    from processes.engine.retention import export_line

    line, problems = export_line(finished)
    assert problems == []
    hashes = [e["hash"] for e in line["events"]]
    assert hashes == list(
        ProcessEvent.objects.filter(process=finished).order_by("seq").values_list("hash", flat=True)
    )


def test_an_archive_line_edited_after_export_breaks_its_chain(finished):
    from processes import history
    from processes.engine.retention import check_line, export_line

    line, _ = export_line(finished)
    statuses = history.business_statuses(finished)
    assert check_line(line, statuses) == []
    line["events"][2]["actor_label"] = "someone else"
    assert any("#3" in p and "hash chain broken" in p for p in check_line(line, statuses))
