"""The incident center: the banner on the instance page, repairs in place, a skip that warns
about what depends on it and sets the missing values, the incidents list, bulk retry; and the
operator's story in Debian's chromium against gunicorn + WhiteNoise."""

import json
import re

import pytest
from django.urls import reverse

from processes import steps
from processes.models import EventType, ProcessState, TaskState
from processes.steps import PermanentStepError
from tests.admin.conftest import admin_login
from tests.admin.helpers import (
    change_url,
    events,
    fresh,
    run_ready_steps,
    start,
    task,
    task_action_url,
)
from tests.conftest import ARTIFACTS
from tests.factories import definition_data


def compute_bonus(ctx):
    """Like the bonus system for E013: no plan, no bonus (until an operator sets one)."""
    plan = ctx.variables.get("plan")
    if not plan:
        raise PermanentStepError(
            "bonus system: no bonus plan for E013 (HTTP 422 from http://127.0.0.1:9/bonus/compute)"
        )
    return {"amount": plan["rate"] * 1000, "currency": "EUR"}


@pytest.fixture
def payroll(import_definition):
    steps.registry.register("test_incidents.bonus", compute_bonus)
    import_definition(
        definition_data(
            "payroll",
            stages=[
                (
                    "CALC",
                    [
                        {
                            "task_name": "bonus",
                            "label": "Compute the bonus",
                            "handler": "test_incidents.bonus",
                        }
                    ],
                ),
                (
                    "REVIEW",
                    [
                        {
                            "task_name": "approve_bonus",
                            "label": "Approve the bonus",
                            "task_type": "HUMAN",
                            "assigned_to": "managers",
                            "outcomes": ["approve", "reject"],
                            "summary": [
                                {
                                    "label": "Bonus",
                                    "var": "bonus.amount",
                                    "format": "money",
                                    "currency_var": "bonus.currency",
                                }
                            ],
                        }
                    ],
                ),
            ],
        )
    )
    yield
    steps.registry.unregister("test_incidents.bonus")


def failed_process(business_key="E013-2026-11"):
    process = start("payroll", business_key)
    run_ready_steps(process)
    assert fresh(process).state == ProcessState.FAILED
    return process


@pytest.mark.django_db
def test_banner_shows_the_incident_with_its_repairs(admin_client, payroll):
    process = failed_process()
    page = admin_client.get(change_url(process)).content.decode()
    banner = page[page.index('id="fd-incident-bonus"') :]
    assert "Incident: Compute the bonus failed" in banner
    assert "no bonus plan for E013" in banner and "1 attempt" in banner
    for action in ("retry", "skip", "replay", "variables"):
        assert f'data-action="{action}"' in banner
    # the banner comes before the instance's fields, diagram and task table
    assert page.index('id="fd-incident-bonus"') < page.index('id="tasks-group"')


@pytest.mark.django_db
def test_skip_warns_what_depends_on_it_and_sets_the_missing_values(admin_client, payroll):
    process = failed_process()
    url = task_action_url(process, "bonus", "skip")
    page = admin_client.get(url).content.decode()
    assert "no bonus plan for E013" in page  # the error, on the confirmation page
    assert 'data-dependant="approve_bonus"' in page
    assert "reads bonus.amount, bonus.currency" in page
    assert "Skipping leaves <strong>bonus.amount, bonus.currency</strong> missing" in page

    response = admin_client.post(
        url,
        {
            "reason": "E013 has no plan: HR set it by hand",
            "set:bonus.amount": "409.32",
            "set:bonus.currency": "EUR",
        },
    )
    assert response.status_code == 302
    process = fresh(process)
    assert process.variables["bonus"] == {"amount": 409.32, "currency": "EUR"}
    assert task(process, "bonus").state == TaskState.SKIPPED
    changed = events(process, EventType.VARIABLES_CHANGED)[-1]
    assert changed.data["reason"] == "E013 has no plan: HR set it by hand"
    assert task(process, "approve_bonus").state == TaskState.SCHEDULED


@pytest.mark.django_db
def test_skip_without_the_correct_grant_only_warns(client, payroll):
    from guardian.shortcuts import assign_perm

    from processes.models import ProcessDefinition
    from tests.factories import UserFactory

    process = failed_process()
    operator = UserFactory(username="op", is_staff=True)
    assign_perm("processes.operate_process", operator, ProcessDefinition.objects.get(key="payroll"))
    client.force_login(operator)
    page = client.get(task_action_url(process, "bonus", "skip")).content.decode()
    assert "You may not correct variables here" in page
    assert 'name="set:bonus.amount"' not in page
    # a value posted anyway is ignored: the form has no such field
    client.post(
        task_action_url(process, "bonus", "skip"), {"reason": "skip", "set:bonus.amount": "1"}
    )
    assert "bonus" not in fresh(process).variables


@pytest.mark.django_db
def test_incidents_list_says_what_and_whether_still_open(
    admin_client, payroll, django_capture_on_commit_callbacks
):
    from integrations.models import Incident

    with django_capture_on_commit_callbacks(execute=True):
        process = failed_process()
    incident = Incident.objects.get(process_id=process.pk)
    url = reverse("admin:integrations_incident_changelist")
    page = admin_client.get(url).content.decode()
    assert f'href="{change_url(process)}">E013-2026-11</a>' in page
    assert "payroll" in page and "no bonus plan for E013" in page
    assert ">open<" in page
    assert "delete_selected" not in page
    assert (
        admin_client.post(
            reverse("admin:integrations_incident_delete", args=[incident.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    admin_client.post(task_action_url(process, "bonus", "retry"), {"reason": "try again"})
    assert ">resolved<" in admin_client.get(url).content.decode()


@pytest.mark.django_db
def test_bulk_retry_of_the_selected_failed_instances(admin_client, payroll):
    first, second = failed_process("E013-1"), failed_process("E013-2")
    response = admin_client.post(
        reverse("admin:processes_processinstance_changelist"),
        {"action": "retry_failed", "_selected_action": [str(first.pk), str(second.pk)]},
        follow=True,
    )
    assert "2 failed tasks scheduled again." in response.content.decode()
    for process in (first, second):
        assert task(process, "bonus").state == TaskState.SCHEDULED
        assert (
            events(process, EventType.TASK_RETRIED)[-1].data["reason"] == "bulk retry (admin list)"
        )


@pytest.mark.browser
def test_operator_fixes_the_e013_incident_in_the_browser(
    web_server, browser_page, asset_guard, superuser, payroll
):
    process = failed_process()
    page = browser_page
    admin_login(page, web_server.url)

    # the incident is on the first screen of the instance page
    response = page.goto(web_server.url + change_url(process))
    assert response.status == 200, web_server.output()[-3000:]
    banner = page.locator("#fd-incident-bonus")
    assert "no bonus plan for E013" in banner.inner_text()
    box = banner.bounding_box()
    assert box["y"] + 60 < page.viewport_size["height"]
    assert box["x"] + box["width"] <= page.viewport_size["width"]  # a long URL wraps, never pushes
    page.screenshot(path=str(ARTIFACTS / "operator-incident.png"))

    # sets the missing variable (one variable at a time), with a reason
    banner.locator("[data-action=variables]").click()
    assert "No variables." in page.inner_text("#fd-variables-table")
    page.fill("#id_path", "plan")
    page.click("#fd-variable-path [type=submit]")
    page.locator("#id_value").fill(json.dumps({"rate": 0.4}))
    page.fill("#id_reason", "E013's plan came by mail from HR")
    page.click("#fd-confirm")
    page.wait_for_selector(".messagelist")
    assert "Corrected plan." in page.inner_text(".messagelist")

    # retries from the banner: the confirmation shows the error first
    page.locator("#fd-incident-bonus [data-action=retry]").click()
    assert "no bonus plan for E013" in page.inner_text("#fd-confirm-error")
    page.fill("#id_reason", "plan set")
    page.click("#fd-confirm")
    page.wait_for_selector(".messagelist")
    assert "scheduled again" in page.inner_text(".messagelist")

    # the worker runs it: the incident is resolved, the approval waits with its bonus
    run_ready_steps(process)
    process = fresh(process)
    assert task(process, "bonus").state == TaskState.COMPLETED
    assert process.variables["bonus"] == {"amount": 400.0, "currency": "EUR"}
    page.goto(web_server.url + change_url(process))
    assert page.locator(".fd-incident").count() == 0
    page.screenshot(path=str(ARTIFACTS / "operator-resolved.png"), full_page=True)
    page.goto(web_server.url + reverse("admin:integrations_incident_changelist"))
    assert re.search(r"resolved", page.inner_text("#result_list"))
    changed = events(process, EventType.VARIABLES_CHANGED)[-1]
    assert (changed.actor_label, changed.data["reason"]) == (
        "boss",
        "E013's plan came by mail from HR",
    )


@pytest.mark.django_db
def test_dashboard_incidents_say_what_failed(admin_client, payroll):
    process = failed_process()
    url = reverse("admin:processes_processinstance_dashboard") + "?key=payroll"
    page = admin_client.get(url).content.decode()
    incidents = page[page.index('id="fd-incidents"') :]
    assert f'href="{change_url(process)}">E013-2026-11</a>' in incidents
    assert "<code>bonus</code>" in incidents and "no bonus plan for E013" in incidents
