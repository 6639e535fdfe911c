"""In Debian's headless chromium against gunicorn + WhiteNoise, at 1280×800 and 390×844: bulk
approve asks first (the number of cases and the total amount), and a substitute takes over
a manager's tasks during her absence."""

import datetime as dt
import re

import pytest
from django.utils import timezone

from processes import engine
from processes.events import Actor
from processes.models import ProcessEvent, TaskState
from tests.conftest import ARTIFACTS
from tests.factories import UserFactory
from tests.tasks_inbox.conftest import approval_definition
from tests.tasks_inbox.test_browser import in_view, no_sideways_scroll
from tests.tasks_inbox.test_bulk import money_definition, start_bonus

pytestmark = pytest.mark.browser

VIEWPORTS = pytest.mark.parametrize(
    "width, height", [(1280, 800), (390, 844)], ids=["desktop", "phone"]
)


def log_in(page, url, username, then="/inbox/"):
    page.goto(f"{url}/accounts/login/?next={then}")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(rf".*{re.escape(then)}$"))


@VIEWPORTS
def test_bulk_approve_shows_the_cases_and_the_total_before_it_decides(
    web_server, browser_page, asset_guard, import_definition, width, height
):
    import_definition(money_definition())
    UserFactory(username="mia", roles=["managers"])
    tasks = [start_bonus(f"B-{n}", amount) for n, amount in ((1, "1000.50"), (2, 250), (3, 7))]
    page = browser_page
    page.set_viewport_size({"width": width, "height": height})
    log_in(page, web_server.url, "mia")
    assert page.locator("[data-bulk=rework]").count() == 0  # never in bulk

    page.check(f"[data-select='{tasks[0].pk}']")
    page.check(f"[data-select='{tasks[1].pk}']")
    page.click("[data-bulk=approve]")

    page.wait_for_selector("[data-testid=bulk-confirm]")
    assert page.inner_text("[data-testid=confirm-title]") == "Approve 2 cases?"
    assert page.inner_text("[data-testid=confirm-count]") == "2 cases"
    assert page.inner_text("[data-testid=confirm-total]") == "€1,250.50"
    assert in_view(page, "[data-testid=confirm]") or width < 400  # (the phone scrolls down)
    assert no_sideways_scroll(page)
    page.screenshot(path=str(ARTIFACTS / f"bulk-confirm-{width}.png"), full_page=True)
    assert [t.state for t in _fresh(tasks)] == [TaskState.SCHEDULED] * 3  # not yet

    page.click("[data-testid=confirm]")
    page.wait_for_selector(".messages")
    assert "Approve: B-1, B-2 (2 tasks)." in page.inner_text(".messages")
    states = [t.state for t in _fresh(tasks)]
    assert states == [TaskState.COMPLETED, TaskState.COMPLETED, TaskState.SCHEDULED]
    page.screenshot(path=str(ARTIFACTS / f"bulk-done-{width}.png"), full_page=True)


def _fresh(tasks):
    for task in tasks:
        task.refresh_from_db()
    return tasks


@VIEWPORTS
def test_a_substitute_takes_over_during_an_absence(
    web_server, browser_page, asset_guard, import_definition, width, height
):
    import_definition(approval_definition(assignee="manager"))
    UserFactory(username="anna", roles=["managers"])
    UserFactory(username="ben", roles=["managers"])

    def start(key):
        return engine.process_start(
            definition_key="approval",
            business_key=key,
            input={"manager": "anna", "bonus": 100},
            actor=Actor.system("test"),
        ).process.tasks.get(name="approve_bonus")

    held = start("EMP-1")  # anna's before she goes
    page = browser_page
    page.set_viewport_size({"width": width, "height": height})
    today = timezone.localdate()
    until = (today + dt.timedelta(days=7)).isoformat()

    # anna records her holiday, ben covers
    log_in(page, web_server.url, "anna")
    page.click("[data-testid=absences-link]")
    page.wait_for_url(re.compile(r".*/inbox/absences/$"))
    assert "No absence recorded" in page.inner_text("[data-testid=no-absences]")
    page.fill("#id_starts_on", today.isoformat())
    page.fill("#id_ends_on", until)
    page.select_option("#id_substitute", label="ben")
    page.fill("#id_note", "Holiday")
    page.click("#absence-form button[type=submit]")
    page.wait_for_selector(".messages")
    assert "your tasks go to ben meanwhile" in page.inner_text(".messages")
    assert no_sideways_scroll(page)
    page.screenshot(path=str(ARTIFACTS / f"absence-{width}.png"), full_page=True)
    page.click("header button.link")  # log out
    page.wait_for_url(re.compile(r".*/accounts/login/$"))

    fresh = start("EMP-2")  # a new task for anna while she is away

    # ben finds both in his inbox, on behalf of anna, and decides one
    log_in(page, web_server.url, "ben", then="/inbox/?tab=assigned")
    for task in (held, fresh):
        row = page.locator(f"tr[data-task='{task.pk}']")
        assert "on behalf of anna" in row.inner_text()
    page.locator(f"tr[data-task='{fresh.pk}']").get_by_role("link", name="EMP-2").click()
    page.wait_for_url(re.compile(rf".*/inbox/tasks/{fresh.pk}/$"))
    assert "On behalf of anna, who is away: you cover for them." in page.inner_text(
        "[data-testid=on-behalf-of]"
    )
    assert no_sideways_scroll(page)
    page.screenshot(path=str(ARTIFACTS / f"substitute-{width}-task.png"), full_page=True)
    page.check("input[name=decision][value=approve]")
    page.fill("#id_amount", "100")
    page.get_by_role("button", name="Submit decision").click()
    page.wait_for_url(re.compile(r".*/inbox/\?tab=done"))

    fresh.refresh_from_db()
    assert (fresh.state, fresh.decided_by.username) == (TaskState.COMPLETED, "ben")
    why = ProcessEvent.objects.get(task_id=fresh.pk, type="task_substituted").data
    assert (why["absent"], why["to"], why["until"]) == ("anna", "ben", until)
