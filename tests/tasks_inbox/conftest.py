"""Fixtures of the inbox tests: a small approval process of our own, people in roles."""

import pytest

from processes import engine
from processes.events import Actor
from tests.factories import UserFactory, definition_data


def approval_definition(key="approval", escalation=None, assignee=None):
    review = {
        "task_name": "approve_bonus",
        "task_type": "HUMAN",
        "assigned_to": "managers",
        "label": "Approve the bonus",
        "outcomes": ["approve", "reject"],
        "form": [
            {
                "name": "amount",
                "type": "decimal",
                "label": "Bonus amount",
                "required": True,
                "min": 0,
                "max": 100000,
            },
            {"name": "pay_date", "type": "date"},
        ],
        "escalation": escalation or {"after": "P2D", "to": "directors", "notify": True},
        "business_status": "Bonus reviewed",
    }
    if assignee:
        review["assignee"] = assignee
    return definition_data(
        key,
        stages=[
            ("REVIEW", [review]),
            (
                "PAYOUT",
                [
                    {
                        "task_name": "record_payout",
                        "handler": "flowdesk.noop",
                        "condition": {"var": "approve_bonus.decision", "value": "approve"},
                        "business_status": "Paid",
                    },
                    {
                        "task_name": "notify_rejection",
                        "handler": "flowdesk.noop",
                        "condition": {"var": "approve_bonus.decision", "value": "reject"},
                        "business_status": "Rejected",
                    },
                ],
            ),
        ],
    )


@pytest.fixture
def approval(import_definition):
    return import_definition(approval_definition())


@pytest.fixture
def start(approval):
    """Start an approval process; return its open human task."""

    def _start(business_key="EMP-1", variables=None, definition_key="approval"):
        result = engine.process_start(
            definition_key=definition_key,
            business_key=business_key,
            input=variables
            if variables is not None
            else {"employee": business_key, "salary_base": {"amount": 4200.5}, "bonus": 1200},
            actor=Actor.system("test"),
        )
        return result.process.tasks.get(name="approve_bonus")

    return _start


@pytest.fixture
def people(db):
    """candidate (managers), peer (managers), director, other (another role), staff, superuser."""
    return {
        "candidate": UserFactory(username="mia", roles=["managers"]),
        "peer": UserFactory(username="paul", roles=["managers"]),
        "director": UserFactory(username="dora", roles=["directors"]),
        "other": UserFactory(username="olga", roles=["accountants"]),
        "staff": UserFactory(username="stan", is_staff=True),
        "superuser": UserFactory(username="root", is_staff=True, is_superuser=True),
        "outsider": UserFactory(username="nora"),
    }
