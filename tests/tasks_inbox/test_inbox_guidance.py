"""The inbox guides: a process filter with counts, empty states that say what to do, and how
an amount came about where the definition explains it."""

import pytest
from django.urls import reverse

from processes import engine
from processes.events import Actor
from tests.factories import UserFactory, definition_data

pytestmark = pytest.mark.django_db


def review(key, name, explain=None):
    task = {
        "task_name": "ok",
        "task_type": "HUMAN",
        "assigned_to": "managers",
        "outcomes": ["approve", "reject"],
    }
    if explain:
        task["explain"] = explain
    data = definition_data(key, stages=[("REVIEW", [task])])
    data["workflow_name"] = name
    return data


def start(key, business_key, variables=None):
    return engine.process_start(
        definition_key=key,
        business_key=business_key,
        input=variables or {},
        actor=Actor.system("t"),
    ).process.tasks.get(name="ok")


def test_the_process_filter_counts_open_tasks_per_type(client, import_definition):
    import_definition(review("salary", "Salary"))
    import_definition(review("pizza", "Pizza order"))
    for i in range(3):
        start("salary", f"S-{i}")
    start("pizza", "P-1")
    client.force_login(UserFactory(username="mia", roles=["managers"]))

    page = client.get(reverse("tasks_inbox:inbox")).content.decode()

    assert '<span class="count" data-count-definition="salary">3</span>' in page
    assert '<span class="count" data-count-definition="pizza">1</span>' in page
    assert 'All <span class="count">4</span>' in page
    only = client.get(reverse("tasks_inbox:inbox") + "?definition=pizza")
    assert [t.process.business_key for t in only.context["page"]] == ["P-1"]


@pytest.mark.parametrize(
    ("roles", "query", "says"),
    [
        ([], "", "You are in no role yet"),
        (["managers"], "", "Nothing waits for your roles (managers)"),
        (["managers"], "?tab=assigned", "Nothing is assigned to you."),
        (["managers"], "?tab=overdue", "Nothing is overdue."),
        (["managers"], "?tab=done", "You have not decided anything yet."),
        (["managers"], "?q=ZZZ", "Nothing matches “ZZZ” with these filters."),
    ],
)
def test_empty_states_say_what_to_do(client, roles, query, says):
    client.force_login(UserFactory(username="mia", roles=roles))

    page = client.get(reverse("tasks_inbox:inbox") + query).content.decode()

    assert says in page


def test_the_manager_sees_how_the_amount_came_about(client, import_definition):
    import_definition(
        review(
            "bonus",
            "Bonus",
            explain=[
                {"label": "Salary base", "var": "base", "format": "money", "currency": "EUR"},
                {"label": "Rating", "var": "rating", "format": "choice"},
                {"label": "Bonus rate", "var": "rate", "format": "percent"},
                {"label": "Bonus", "var": "amount", "format": "money", "currency": "EUR"},
            ],
        )
    )
    task = start(
        "bonus", "B-1", {"base": "4000.00", "rating": "exceeds", "rate": "8", "amount": "320.00"}
    )
    client.force_login(UserFactory(username="mia", roles=["managers"]))

    page = client.get(reverse("tasks_inbox:task", args=[task.pk])).content.decode()

    assert "How the amount came about" in page
    rows = [
        ("Salary base", "€4,000.00"),
        ("Rating", "Exceeds"),
        ("Bonus rate", "8 %"),
        ("Bonus", "€320.00"),
    ]
    for i, (label, value) in enumerate(rows, start=1):
        assert f'data-explain="{i}"><th scope="row">{label}</th><td class="amount">{value}' in page
