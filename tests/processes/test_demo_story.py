"""The demo's story is read from the state of the database, and a restart doesn't wait for a
failure that already happened or was repaired."""

import pytest

from processes import engine
from processes.events import Actor
from processes.management.commands import demo
from tests.factories import UserFactory, definition_data
from tests.tasks_inbox.conftest import approval_definition

pytestmark = pytest.mark.django_db


def test_the_story_names_who_has_which_approval_now(import_definition):
    import_definition(approval_definition(key="salary", assignee="manager"))
    UserFactory(username="alice", roles=["managers"])
    for key, manager in (("E003-2026-11", "alice"), ("E005-2026-11", "alice"), ("E004", "")):
        engine.process_start(
            definition_key="salary",
            business_key=key,
            input={"manager": manager},
            actor=Actor.system("t"),
        )

    lines = demo.story("http://demo")

    assert lines[0] == (
        "Bonus approvals waiting: alice (alice/alice) has E003-2026-11, E005-2026-11; managers "
        "has E004: log in at http://demo/inbox/ and decide."
    )


def test_an_incident_is_told_with_its_error(import_definition):
    import_definition(
        definition_data(
            "broken", stages=[("S", [{"task_name": "pay", "handler": "flowdesk.noop"}])]
        )
    )
    process = engine.process_start(
        definition_key="broken", business_key="B-1", input={}, actor=Actor.system("t")
    ).process
    task = process.tasks.get(name="pay")
    engine.task_start(task_id=task.pk, actor=Actor.worker())
    engine.task_fail(task_id=task.pk, actor=Actor.worker(), error="no plan", retryable=False)

    lines = demo.story("http://demo")

    assert any(line.startswith("Incident: B-1: pay failed (no plan)") for line in lines)


def test_an_empty_database_tells_how_to_start():
    assert demo.story("http://demo") == [
        "Nothing waits for anyone: start a case from the admin or the API."
    ]


def test_a_restart_does_not_wait_for_a_failure_that_is_not_coming(monkeypatch):
    naps = []
    monkeypatch.setattr(demo.time, "sleep", naps.append)

    demo.wait_for_incident(timeout=60)  # no failing case calculating: at once

    assert len(naps) == 1
