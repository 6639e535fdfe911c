"""What a manager reads first: the summary's formats, the one date format and the site's zone."""

import datetime as dt

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from processes import spec
from processes.events import Actor
from tasks_inbox import presenters
from tests.factories import UserFactory, definition_data


def item(var, fmt="text", **kw):
    return spec.SummaryItem(label=var, var=var, format=fmt, **kw)


@pytest.mark.parametrize(
    "fmt, value, extra, expected",
    [
        ("money", "409.3", {"currency": "EUR"}, "€409.30"),
        ("money", 3411, {"currency": "USD"}, "$3,411.00"),
        ("money", "-12.5", {"currency": "GBP"}, "-£12.50"),
        ("money", "1234567.891", {"currency": "SEK"}, "1,234,567.89 SEK"),
        ("money", "12", {}, "12.00"),
        ("number", 12000, {}, "12,000"),
        ("number", "2.5", {}, "2.50"),
        ("percent", 12.5, {}, "12.50 %"),
        ("date", "2026-11-03", {}, "3 Nov 2026"),
        ("duration", "P2DT3H", {}, "2 days 3 hours"),
        ("duration", 90, {}, "1 minute"),
        ("duration", 5, {}, "5 seconds"),
        ("choice", "meets_expectations", {}, "Meets expectations"),
        ("text", "Jane Roe", {}, "Jane Roe"),
        ("money", "not a number", {"currency": "EUR"}, "not a number"),
    ],
)
def test_summary_formats(fmt, value, extra, expected):
    assert presenters.format_fact(item("v", fmt, **extra), value, {}) == expected


def test_money_reads_its_currency_from_a_variable():
    summary = spec.SummaryItem("Bonus", "bonus.amount", "money", currency_var="bonus.currency")
    variables = {"bonus": {"amount": "409.32", "currency": "EUR"}}
    task_spec = type("T", (), {"summary": (summary,)})()
    assert presenters.summary_facts(task_spec, variables) == [presenters.Fact("Bonus", "€409.32")]


def test_a_missing_fact_says_so():
    task_spec = type("T", (), {"summary": (item("bonus.amount", "money"),)})()
    [fact] = presenters.summary_facts(task_spec, {"bonus": {}})
    assert (fact.value, fact.missing) == ("not available", True)


@pytest.mark.parametrize(
    "zone, expected",
    [
        ("UTC", "28 Nov 2026, 19:23 UTC"),
        ("Europe/Paris", "28 Nov 2026, 20:23 CET"),
        ("America/New_York", "28 Nov 2026, 14:23 EST"),
    ],
)
def test_times_show_in_the_site_zone_with_its_name(zone, expected):
    moment = dt.datetime(2026, 11, 28, 19, 23, tzinfo=dt.UTC)
    with override_settings(TIME_ZONE=zone), timezone.override(zone):
        assert presenters.format_when(moment) == expected
        assert presenters.format_fact(item("at", "datetime"), moment.isoformat(), {}) == expected


def summary_definition():
    return definition_data(
        "bonus",
        stages=[
            (
                "REVIEW",
                [
                    {
                        "task_name": "approve_bonus",
                        "task_type": "HUMAN",
                        "assigned_to": "managers",
                        "label": "Approve the bonus",
                        "description": "Check the bonus, then approve or reject it.",
                        "outcomes": ["approve", "reject"],
                        "summary": [
                            {
                                "label": "Bonus to approve",
                                "var": "bonus.amount",
                                "format": "money",
                                "currency_var": "bonus.currency",
                            },
                            {"label": "Rating", "var": "bonus.rating", "format": "choice"},
                        ],
                    }
                ],
            )
        ],
    )


@pytest.mark.django_db
def test_task_page_and_inbox_row_lead_with_the_summary(client, import_definition):
    from processes import engine

    import_definition(summary_definition())
    mia = UserFactory(username="mia", roles=["managers"])
    process = engine.process_start(
        definition_key="bonus",
        business_key="E003-2026-11",
        input={"bonus": {"amount": "409.32", "currency": "EUR", "rating": "meets"}},
        actor=Actor.system("test"),
    ).process
    task = process.tasks.get(name="approve_bonus")
    client.force_login(mia)

    page = client.get(reverse("tasks_inbox:task", args=[task.pk])).content.decode()
    # instructions, summary and the form come before the details
    description = page.index("Check the bonus, then approve or reject it.")
    summary = page.index("€409.32")
    form = page.index('id="decision-form"')
    details = page.index('id="details"')
    assert description < summary < form < details
    assert "Waiting for: Approve the bonus" in page
    # the admin's diagram, read-only: no links into the admin
    diagram = page[page.index('data-testid="diagram"') :]
    assert 'class="fd-diagram"' in diagram and "/admin/" not in diagram[: diagram.index("</svg>")]

    inbox = client.get(reverse("tasks_inbox:inbox") + "?tab=roles").content.decode()
    assert "Bonus to approve:</span> <strong>€409.32</strong>" in inbox
    assert "Rating:</span> <strong>Meets</strong>" in inbox
    assert 'data-count="roles">1<' in inbox

    # someone outside the role sees no row, and no summary leaks through a filter
    olga = UserFactory(username="olga", roles=["accountants"])
    client.force_login(olga)
    assert "409.32" not in client.get(reverse("tasks_inbox:inbox") + "?tab=roles").content.decode()


@pytest.mark.django_db
def test_inbox_filters_by_process_and_due(client, import_definition):
    from processes import engine
    from processes.models import TaskInstance

    import_definition(summary_definition())
    import_definition(
        definition_data("other", stages=[("S", [summary_definition()["stages"][0]["tasks"][0]])])
    )
    mia = UserFactory(username="mia", roles=["managers"])
    keys = {}
    for key, business_key in (("bonus", "B-1"), ("bonus", "B-2"), ("other", "O-1")):
        process = engine.process_start(
            definition_key=key, business_key=business_key, input={}, actor=Actor.system("t")
        ).process
        keys[business_key] = process.tasks.get()
    TaskInstance.objects.filter(pk=keys["B-1"].pk).update(
        due_at=timezone.now() - dt.timedelta(hours=1)
    )
    TaskInstance.objects.filter(pk=keys["O-1"].pk).update(
        due_at=timezone.now() + dt.timedelta(days=3)
    )
    client.force_login(mia)
    url = reverse("tasks_inbox:inbox")

    def listed(query):
        body = client.get(url + query).content.decode()
        return {bk for bk in keys if f">{bk}<" in body}

    assert listed("?tab=roles") == {"B-1", "B-2", "O-1"}
    assert listed("?tab=roles&definition=bonus") == {"B-1", "B-2"}
    assert listed("?tab=roles&due=overdue") == {"B-1"}
    assert listed("?tab=roles&due=week") == {"B-1", "O-1"}
    assert listed("?tab=roles&due=none") == {"B-2"}
    assert listed("?tab=roles&definition=other&due=week") == {"O-1"}
    # an unknown filter value is ignored, never an error
    assert listed("?tab=roles&definition=nope&due=someday") == {"B-1", "B-2", "O-1"}
    body = client.get(url).content.decode()
    assert 'data-count="overdue">1<' in body and 'data-count="assigned">0<' in body


@pytest.mark.django_db
def test_process_type_filter_lists_held_tasks_outside_roles(client, import_definition):
    """The filter's choices come from the tasks' own definition key: a task delegated to mia
    outside her roles still puts its process type in her filter, and filtering finds it."""
    from processes import engine
    from processes.models import TaskInstance
    from tasks_inbox.selectors import definition_choices

    import_definition(summary_definition())
    other_task = dict(summary_definition()["stages"][0]["tasks"][0], assigned_to="accountants")
    import_definition(definition_data("other", stages=[("S", [other_task])]))
    mia = UserFactory(username="mia", roles=["managers"])
    started = {}
    for key, business_key in (("bonus", "B-1"), ("other", "O-1")):
        process = engine.process_start(
            definition_key=key, business_key=business_key, input={}, actor=Actor.system("t")
        ).process
        started[key] = process.tasks.get()
    assert {t.definition_key for t in TaskInstance.objects.all()} == {"bonus", "other"}
    assert [row[0] for row in definition_choices(mia, ["managers"])] == ["bonus"]

    TaskInstance.objects.filter(pk=started["other"].pk).update(assignee=mia)
    assert sorted(row[0] for row in definition_choices(mia, ["managers"])) == ["bonus", "other"]
    client.force_login(mia)
    body = client.get(reverse("tasks_inbox:inbox") + "?tab=assigned&definition=other")
    assert ">O-1<" in body.content.decode() and ">B-1<" not in body.content.decode()
