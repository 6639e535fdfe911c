"""Reassigning a human task from the admin: the confirmation asks whom and why, and calls the
engine function the API calls (``engine.reassign_task``)."""

import pytest

from processes.models import EventType
from tests.admin.helpers import events, start, task, task_action_url
from tests.factories import UserFactory, definition_data

pytestmark = pytest.mark.django_db


@pytest.fixture
def review(import_definition):
    import_definition(
        definition_data(
            "review",
            stages=[
                (
                    "REVIEW",
                    [
                        {
                            "task_name": "approve",
                            "task_type": "HUMAN",
                            "assigned_to": "managers",
                            "assignee": "manager",
                            "not_by_var": ["employee"],
                            "outcomes": ["approve", "reject"],
                        }
                    ],
                )
            ],
        )
    )


def test_the_operator_reassigns_bobs_task_to_carl(admin_client, review):
    bob = UserFactory(username="bob", roles=["managers"])
    carl = UserFactory(username="carl", roles=["managers"])
    process = start("review", "R-1", input={"manager": "bob", "employee": "erin"})
    assert task(process, "approve").assignee == bob
    url = task_action_url(process, "approve", "reassign")
    page = admin_client.get(url).content.decode()
    assert 'name="to_user"' in page and 'name="to_role"' in page and 'name="reason"' in page
    response = admin_client.post(url, {"to_user": "carl", "reason": "bob is on holiday"})
    assert response.status_code == 302
    assert task(process, "approve").assignee == carl
    event = events(process, EventType.TASK_REASSIGNED)[-1]
    assert event.data["reason"] == "bob is on holiday" and event.data["from"] == "bob"


def test_errors_are_shown_next_to_the_fields(admin_client, review):
    UserFactory(username="bob", roles=["managers"])
    UserFactory(username="erin", roles=["managers"])
    process = start("review", "R-2", input={"manager": "bob", "employee": "erin"})
    url = task_action_url(process, "approve", "reassign")
    # separation of duties: the decision is about erin
    page = admin_client.post(url, {"to_user": "erin", "reason": "r"}).content.decode()
    assert "This decision is about them" in page
    page = admin_client.post(url, {"to_user": "ghost", "reason": "r"}).content.decode()
    assert "unknown user" in page
    page = admin_client.post(url, {"to_role": "nobody", "reason": "r"}).content.decode()
    assert "no role named" in page
    assert events(process, EventType.TASK_REASSIGNED) == []
