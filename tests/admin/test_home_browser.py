"""The operator's story in a browser (gunicorn + WhiteNoise, headless chromium), at 1280x800 and
on a 390x844 phone: the operations home shows the incident → its repair page explains it →
the operator skips the failed task, setting the typed value later tasks need → the case goes
on and completes."""

import pytest

from processes import engine, steps
from processes.events import Actor
from processes.models import EventType, ProcessState, TaskState
from processes.steps import PermanentStepError
from tests.admin.conftest import admin_login
from tests.admin.helpers import events, fresh, run_ready_steps, start, task
from tests.conftest import ARTIFACTS
from tests.factories import UserFactory, definition_data


def no_plan(ctx):
    raise PermanentStepError("bonus system: no bonus plan for E013")


@pytest.fixture
def payroll(import_definition):
    steps.registry.register("test_home_browser.bonus", no_plan)
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
                            "handler": "test_home_browser.bonus",
                            "result": [
                                {"name": "amount", "type": "decimal", "places": 2, "min": 0},
                                {"name": "currency", "type": "string", "pattern": "[A-Z]{3}"},
                            ],
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
                                {"label": "Bonus", "var": "bonus.amount", "format": "money",
                                 "currency_var": "bonus.currency"}
                            ],
                        }
                    ],
                ),
            ],
        )
    )  # fmt: skip
    yield
    steps.registry.unregister("test_home_browser.bonus")


@pytest.mark.browser
@pytest.mark.parametrize("width, height", [(1280, 800), (390, 844)], ids=["desktop", "phone"])
def test_home_incident_repair_with_a_typed_value_then_the_case_completes(
    web_server, browser_page, asset_guard, superuser, payroll, width, height
):
    process = start("payroll", "E013-2026-11")
    run_ready_steps(process)
    assert fresh(process).state == ProcessState.FAILED
    page = browser_page
    page.set_viewport_size({"width": width, "height": height})
    admin_login(page, web_server.url)

    # the home: the incident, with its age and the way to its repair
    response = page.goto(web_server.url + "/admin/")
    assert response.status == 200, web_server.output()[-3000:]
    assert page.inner_text("#fd-card-incidents .n") == "1"
    row = page.locator("#fd-home-incident-table tr", has_text="E013-2026-11")
    assert "bonus" in row.inner_text()
    assert page.locator("#fd-home-definitions tr[data-key=payroll] .fd-dashboard-link").count() == 1
    assert page.evaluate("document.documentElement.scrollWidth") <= width + 1  # no sideways page
    page.screenshot(path=str(ARTIFACTS / f"operator-home-{width}.png"), full_page=True)

    # the repair page: the incident banner says what failed
    row.locator("a.fd-repair").click()
    banner = page.locator("#fd-incident-bonus")
    assert "no bonus plan for E013" in banner.inner_text()

    # skip, setting the typed values the approval reads; a value the type refuses is shown
    banner.locator("[data-action=skip]").click()
    assert "no bonus plan for E013" in page.inner_text("#fd-confirm-error")
    page.locator('[name="set:bonus.amount"]').fill("-5")
    page.locator('[name="set:bonus.currency"]').fill("EUR")
    page.fill("#id_reason", "E013's bonus agreed with HR by phone")
    page.click("#fd-confirm")
    page.wait_for_load_state()
    assert task(process, "bonus").state == TaskState.FAILED  # nothing set, nothing skipped
    page.locator('[name="set:bonus.amount"]').fill("409.32")
    if not page.input_value("#id_reason"):
        page.fill("#id_reason", "E013's bonus agreed with HR by phone")
    page.click("#fd-confirm")
    page.wait_for_selector(".messagelist")
    assert "task bonus skipped" in page.inner_text(".messagelist")
    process = fresh(process)
    assert process.state == ProcessState.RUNNING
    assert process.variables["bonus"] == {"amount": "409.32", "currency": "EUR"}
    changed = events(process, EventType.VARIABLES_CHANGED)[-1]
    assert changed.data["reason"] == "E013's bonus agreed with HR by phone"

    # the manager approves: the case completes, and the home has no incident left
    manager = UserFactory(username="mara", roles=["managers"])
    engine.task_decide(
        task_id=task(process, "approve_bonus").pk,
        actor=Actor.for_user(manager),
        decision="approve",
    )
    assert fresh(process).state == ProcessState.COMPLETED
    page.goto(web_server.url + "/admin/")
    assert page.inner_text("#fd-card-incidents .n") == "0"
    assert page.locator("#fd-home-no-incidents").count() == 1
    page.screenshot(path=str(ARTIFACTS / f"operator-home-after-{width}.png"), full_page=True)
