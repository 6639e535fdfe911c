"""A reassignment in a browser (gunicorn + WhiteNoise, headless chromium), at 1280x800 and on a
390x844 phone: the operator opens the case, reassigns bob's approval to carl with a reason, the
history says so, and carl finds the task in his inbox."""

import re

import pytest

from processes.models import EventType
from tests.admin.conftest import admin_login
from tests.admin.helpers import events, start, task
from tests.conftest import ARTIFACTS
from tests.factories import UserFactory, definition_data


@pytest.fixture
def review(import_definition):
    approve = {
        "task_name": "approve",
        "label": "Approve the expense",
        "task_type": "HUMAN",
        "assigned_to": "managers",
        "assignee": "manager",
        "outcomes": ["approve", "reject"],
    }
    import_definition(definition_data("review", stages=[("REVIEW", [approve])]))


@pytest.mark.browser
@pytest.mark.parametrize("width, height", [(1280, 800), (390, 844)], ids=["desktop", "phone"])
def test_the_operator_reassigns_an_approval_and_the_new_holder_finds_it(
    web_server, browser_page, asset_guard, superuser, review, width, height
):
    UserFactory(username="bob", roles=["managers"])
    UserFactory(username="carl", roles=["managers"])
    process = start("review", f"R-{width}", input={"manager": "bob"})
    assert task(process, "approve").assignee.username == "bob"
    page = browser_page
    page.set_viewport_size({"width": width, "height": height})
    admin_login(page, web_server.url)

    response = page.goto(f"{web_server.url}/admin/processes/processinstance/{process.pk}/change/")
    assert response.status == 200, web_server.output()[-3000:]
    page.locator("a.fd-task-action", has_text="reassign").click()
    page.fill('[name="to_user"]', "carl")
    page.fill('[name="reason"]', "bob is on holiday this week")
    page.click("#fd-confirm")
    page.wait_for_selector(".messagelist")
    assert "reassigned to carl" in page.inner_text(".messagelist")
    assert page.evaluate("document.documentElement.scrollWidth") <= width + 1
    page.screenshot(path=str(ARTIFACTS / f"operator-reassign-{width}.png"), full_page=True)

    assert task(process, "approve").assignee.username == "carl"
    event = events(process, EventType.TASK_REASSIGNED)[-1]
    assert event.data["reason"] == "bob is on holiday this week" and event.data["from"] == "bob"

    # carl's inbox lists it among the tasks he holds
    page.context.clear_cookies()
    page.goto(f"{web_server.url}/accounts/login/?next=/inbox/%3Ftab%3Dassigned")
    page.fill("#id_username", "carl")
    page.fill("#id_password", "pw")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/inbox/.*"))
    assert f"R-{width}" in page.inner_text("main")
