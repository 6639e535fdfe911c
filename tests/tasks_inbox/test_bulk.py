"""Bulk decide from the inbox: several tasks whose form needs no input, one decision each."""

import pytest
from django.urls import reverse

from processes import engine
from processes.events import Actor
from processes.models import EventType, ProcessEvent, TaskState
from tests.factories import UserFactory, definition_data

pytestmark = pytest.mark.django_db


def quick(key="quick", role="managers", form=None):
    return definition_data(
        key,
        stages=[
            (
                "REVIEW",
                [
                    {
                        "task_name": "ok",
                        "task_type": "HUMAN",
                        "assigned_to": role,
                        "outcomes": ["approve", "reject"],
                        "form": form or [{"name": "note", "type": "string"}],
                    }
                ],
            )
        ],
    )


def start(key, business_key):
    process = engine.process_start(
        definition_key=key, business_key=business_key, input={}, actor=Actor.system("t")
    ).process
    return process.tasks.get(name="ok")


def test_bulk_approve_records_one_decision_per_task(client, import_definition):
    import_definition(quick())
    import_definition(
        quick("typed", form=[{"name": "amount", "type": "decimal", "required": True}])
    )
    import_definition(quick("other", role="accountants"))
    mia = UserFactory(username="mia", roles=["managers"])
    a, b = start("quick", "Q-1"), start("quick", "Q-2")
    typed = start("typed", "T-1")
    foreign = start("other", "X-1")
    client.force_login(mia)

    inbox = client.get(reverse("tasks_inbox:inbox")).content.decode()
    assert f'data-select="{a.pk}"' in inbox and f'data-select="{b.pk}"' in inbox
    assert f'data-select="{typed.pk}"' not in inbox  # its form needs an amount
    assert 'data-bulk="approve"' in inbox

    response = client.post(
        reverse("tasks_inbox:bulk_decide"),
        {
            "task": [a.pk, b.pk, typed.pk, foreign.pk, "nope"],
            "decision": "approve",
            "comment": "fine",
            "back": "/inbox/?tab=roles",
            "confirmed": "yes",
        },
        follow=True,
    )
    body = response.content.decode()
    assert response.redirect_chain[-1][0] == "/inbox/?tab=roles"
    assert "Approve: Q-1, Q-2 (2 tasks)." in body
    assert "T-1: its form needs your input, open it" in body
    assert f"task {foreign.pk}: not in your inbox" in body
    for task in (a, b):
        task.refresh_from_db()
        assert (task.state, task.decided_by, task.result["decision"]) == (
            TaskState.COMPLETED,
            mia,
            "approve",
        )
        completed = ProcessEvent.objects.get(task_id=task.pk, type=EventType.TASK_COMPLETED)
        assert completed.actor_label == "mia" and completed.data["result"]["comment"] == "fine"
    typed.refresh_from_db()
    assert typed.state == TaskState.SCHEDULED


def test_bulk_decide_refuses_bad_input_in_words(client, import_definition):
    import_definition(quick())
    client.force_login(UserFactory(username="mia", roles=["managers"]))
    url = reverse("tasks_inbox:bulk_decide")
    body = client.post(url, {"decision": "approve"}, follow=True).content.decode()
    assert "Nothing decided: select at least one task." in body
    task = start("quick", "Q-1")
    body = client.post(url, {"task": [task.pk], "decision": "maybe"}, follow=True).content.decode()
    assert "Not decided: Q-1: &#x27;maybe&#x27; is not one of its decisions" in body
    task.refresh_from_db()
    assert task.state == TaskState.SCHEDULED
    # never redirected off the site
    response = client.post(
        url, {"task": [task.pk], "decision": "approve", "back": "https://evil/", "confirmed": "yes"}
    )
    assert response["Location"] == reverse("tasks_inbox:inbox")
    assert client.get(url)["Location"] == reverse("tasks_inbox:inbox")  # a visit: back


@pytest.mark.parametrize("bad", ["1" * 5000, "9" * 25, "²", "-3", "x"])
def test_a_task_id_that_cannot_be_one_is_said_and_the_others_are_decided(
    client, import_definition, bad
):
    import_definition(quick())
    client.force_login(UserFactory(username="mia", roles=["managers"]))
    task = start("quick", "Q-1")
    response = client.post(
        reverse("tasks_inbox:bulk_decide"),
        {"task": [task.pk, bad], "decision": "approve", "confirmed": "yes"},
        follow=True,
    )
    assert response.status_code == 200
    body = response.content.decode().replace("&#x27;", "'")
    assert f"Not decided: {bad[:20]!r}: not a task" in body
    assert "Approve: Q-1 (1 task)." in body
    task.refresh_from_db()
    assert task.state == TaskState.COMPLETED


def money_definition(key="bonus"):
    """Approve or reject a bonus (its amount in the summary), or send it back (rework)."""
    return definition_data(
        key,
        stages=[
            ("CALC", [{"task_name": "calc", "handler": "flowdesk.noop", "inline": True}]),
            (
                "REVIEW",
                [
                    {
                        "task_name": "ok",
                        "task_type": "HUMAN",
                        "assigned_to": "managers",
                        "outcomes": {
                            "approve": {},
                            "reject": {},
                            "rework": {"goto": "CALC", "max_rounds": 2},
                        },
                        "summary": [
                            {"label": "Bonus", "var": "bonus", "format": "money", "currency": "EUR"}
                        ],
                    }
                ],
            ),
        ],
    )


def start_bonus(business_key, bonus):
    process = engine.process_start(
        definition_key="bonus",
        business_key=business_key,
        input={"bonus": bonus},
        actor=Actor.system("t"),
    ).process
    return process.tasks.get(name="ok")


def test_bulk_approve_asks_first_with_the_number_of_cases_and_the_total(client, import_definition):
    import_definition(money_definition())
    client.force_login(UserFactory(username="mia", roles=["managers"]))
    a, b = start_bonus("B-1", "1000.50"), start_bonus("B-2", 250)
    inbox = client.get(reverse("tasks_inbox:inbox")).content.decode()
    assert 'data-bulk="approve"' in inbox and 'data-bulk="reject"' in inbox
    assert 'data-bulk="rework"' not in inbox  # sending back needs the decider's own words

    ask = client.post(
        reverse("tasks_inbox:bulk_decide"), {"task": [a.pk, b.pk], "decision": "approve"}
    )

    page = ask.content.decode()
    assert ask.status_code == 200
    assert '<span data-testid="confirm-count">2 cases</span>' in page
    assert '<span data-testid="confirm-total">€1,250.50</span> in total' in page
    a.refresh_from_db()
    assert a.state == TaskState.SCHEDULED  # nothing decided before the confirmation

    done = client.post(
        reverse("tasks_inbox:bulk_decide"),
        {"task": [a.pk, b.pk], "decision": "approve", "confirmed": "yes"},
        follow=True,
    )

    assert "Approve: B-1, B-2 (2 tasks)." in done.content.decode()
    for task in (a, b):
        task.refresh_from_db()
        assert task.state == TaskState.COMPLETED


def test_rework_is_refused_in_bulk(client, import_definition):
    import_definition(money_definition())
    client.force_login(UserFactory(username="mia", roles=["managers"]))
    task = start_bonus("B-1", 10)

    response = client.post(
        reverse("tasks_inbox:bulk_decide"),
        {"task": [task.pk], "decision": "rework", "confirmed": "yes"},
        follow=True,
    )

    assert "B-1: sending it back needs your comment, open it" in response.content.decode()
    task.refresh_from_db()
    assert task.state == TaskState.SCHEDULED
