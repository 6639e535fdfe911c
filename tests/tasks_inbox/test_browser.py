"""A manager approves a bonus in headless Chromium (Debian's, never a downloaded browser)."""

import re

import pytest

from processes.models import ProcessInstance
from tests.conftest import ARTIFACTS

pytestmark = pytest.mark.browser


def test_manager_claims_and_approves_in_the_browser(live_server, browser_page, start, people):
    # given an approval waiting for the managers
    task = start(
        "EMP-1042",
        variables={"employee": "Jane Roe", "salary_base": {"amount": 4200.5}, "bonus": 1250},
    )
    page = browser_page

    # the manager logs in
    page.goto(f"{live_server.url}/inbox/")
    assert "/accounts/login/" in page.url
    page.fill("#id_username", "mia")
    page.fill("#id_password", "pw")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/inbox/$"))

    # finds the approval in My roles
    page.click("a[data-tab=roles]")
    row = page.locator(f"tr[data-task='{task.pk}']")
    assert row.count() == 1
    assert "managers" in row.inner_text()
    page.screenshot(path=str(ARTIFACTS / "inbox.png"), full_page=True)
    row.get_by_role("link", name="EMP-1042").click()
    page.wait_for_url(re.compile(rf".*/inbox/tasks/{task.pk}/$"))
    assert "4,200.50" in page.inner_text("[data-testid=variables]")

    # claims it
    page.get_by_role("button", name="Claim").click()
    assert "claimed by you" in page.inner_text("main")
    assert page.inner_text("[data-testid=claimed-by]") == "you"

    # a form error is shown next to its field
    page.check("input[name=decision][value=approve]")
    page.fill("#id_amount", "-10")
    page.get_by_role("button", name="Submit decision").click()
    error = page.locator("[data-field=amount] .errorlist")
    assert error.inner_text() == "must be at least 0"
    page.screenshot(path=str(ARTIFACTS / "task.png"), full_page=True)

    # approves with a comment
    page.check("input[name=decision][value=approve]")
    page.fill("#id_amount", "1250")
    page.fill("#id_comment", "Well deserved")
    page.get_by_role("button", name="Submit decision").click()
    page.wait_for_url(re.compile(r".*/inbox/\?tab=done$"))
    assert "the process has moved on" in page.inner_text(".messages")

    # sees it under Done by me
    assert page.locator("a[data-tab=done][aria-current=page]").count() == 1
    done = page.locator(f"tr[data-task='{task.pk}']")
    assert "approve" in done.inner_text()
    page.screenshot(path=str(ARTIFACTS / "done.png"), full_page=True)

    # and the process has moved to its next stage
    process = ProcessInstance.objects.get(pk=task.process_id)
    assert process.current_stage == "PAYOUT"
    assert process.variables["approve_bonus"]["decision"] == "approve"
    assert process.variables["approve_bonus"]["comment"] == "Well deserved"
    assert process.tasks.get(name="record_payout").state == "scheduled"
    done.get_by_role("link", name="EMP-1042").click()
    assert page.inner_text("[data-testid=current-stage]") == "PAYOUT"
    assert "Approve bonus: Approve by mia — “Well deserved”" in page.inner_text(
        "[data-testid=timeline]"
    )
