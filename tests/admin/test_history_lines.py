"""The instance page's history: every event stays a row of the audit table, and each reads as
the inbox's line beside it: one failure is one line (its incident row points at it), every line
names the actor its event recorded."""

import re

import pytest

from processes.models import EventType
from tests.admin.helpers import change_url, events, fresh, run_ready_steps, start, task

pytestmark = pytest.mark.django_db


def history_rows(html: str) -> dict[int, str]:
    """seq -> the row's "What happened" cell."""
    table = html.split('id="events-group"', 1)[1]
    rows = re.findall(
        r'data-seq="(\d+)">\s*<td>\d+</td><td>[^<]*</td>\s*(<td class="fd-line">.*?</td>)',
        table,
        re.S,
    )
    return {int(seq): re.sub(r"<[^>]+>", "", cell).strip() for seq, cell in rows}


def test_a_failure_is_one_line_and_its_incident_row_points_at_it(shop, flaky, admin_client):
    process = start("shop")
    run_ready_steps(process)  # reserve completes, charge fails for good
    assert fresh(process).state == "failed"
    failed = events(process, EventType.TASK_FAILED)[-1]
    (incident,) = events(process, EventType.PROCESS_FAILED)
    rows = history_rows(admin_client.get(change_url(process)).content.decode())
    assert len(rows) == len(events(process))  # the audit table keeps every event
    assert rows[failed.seq] == "Charge failed — an incident is open · worker"
    assert rows[incident.seq] == f"↳ told in #{failed.seq}"
    told = [text for text in rows.values() if "incident" in text and "↳" not in text]
    assert told == [rows[failed.seq]]


def test_a_branch_not_taken_reads_as_the_systems_in_the_admin(import_definition, admin_client):
    from processes import engine
    from processes.events import Actor
    from tests.factories import UserFactory
    from tests.tasks_inbox.conftest import approval_definition

    import_definition(approval_definition())
    process = start("approval", input={"bonus": 1})
    mia = UserFactory(username="mia", roles=["managers"])
    engine.task_decide(
        task_id=task(process, "approve_bonus").pk,
        actor=Actor.for_user(mia),
        decision="reject",
        data={"amount": 0},
    )
    (skipped,) = events(process, EventType.TASK_SKIPPED)
    rows = history_rows(admin_client.get(change_url(process)).content.decode())
    assert rows[skipped.seq] == "Record payout skipped — condition false · system"
