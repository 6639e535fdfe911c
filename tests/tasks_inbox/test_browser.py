"""The manager's story in Debian's headless chromium, against gunicorn + WhiteNoise (what
production runs), at 1280 px and on a 390 px phone: find the task by its summary, see the
decision at the top, a refused submit shows its error in view, decide; no asset ever missing."""

import re

import pytest

from processes import engine
from processes.events import Actor
from processes.models import ProcessInstance
from tests.conftest import ARTIFACTS
from tests.tasks_inbox.conftest import approval_definition

pytestmark = pytest.mark.browser

SUMMARY = [
    {
        "label": "Bonus to approve",
        "var": "bonus.amount",
        "format": "money",
        "currency_var": "bonus.currency",
    },
    {"label": "Employee", "var": "employee"},
    {"label": "Salary base", "var": "salary_base.amount", "format": "money", "currency": "EUR"},
]


@pytest.fixture
def bonus_approval(import_definition):
    data = approval_definition()
    review = data["stages"][0]["tasks"][0]
    review["summary"] = SUMMARY
    review["description"] = "Check the bonus computed for your team member, then decide."
    import_definition(data)

    def start(business_key, amount):
        process = engine.process_start(
            definition_key="approval",
            business_key=business_key,
            input={
                "employee": "Jane Roe",
                "salary_base": {"amount": 3411},
                "bonus": {"amount": amount, "currency": "EUR"},
            },
            actor=Actor.system("test"),
        ).process
        return process.tasks.get(name="approve_bonus")

    return start


def in_view(page, selector) -> bool:
    box = page.locator(selector).first.bounding_box()
    height = page.viewport_size["height"]
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height


def no_sideways_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.parametrize("width, height", [(1280, 800), (390, 844)], ids=["desktop", "phone"])
def test_manager_finds_the_task_by_its_summary_and_decides(
    web_server, browser_page, asset_guard, bonus_approval, people, width, height
):
    task = bonus_approval("E003-2026-11", "409.32")
    page = browser_page
    page.set_viewport_size({"width": width, "height": height})
    shot = f"manager-{width}"

    page.goto(f"{web_server.url}/inbox/")
    assert "/accounts/login/" in page.url
    page.fill("#id_username", "mia")
    page.fill("#id_password", "pw")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/inbox/$"))

    # the inbox row says what the decision is about, with a count on the tab
    assert page.inner_text("[data-count=roles]") == "1"
    row = page.locator(f"tr[data-task='{task.pk}']")
    assert "Bonus to approve: €409.32" in row.inner_text()
    assert no_sideways_scroll(page)
    page.screenshot(path=str(ARTIFACTS / f"{shot}-inbox.png"), full_page=True)

    row.get_by_role("link", name="E003-2026-11").click()
    page.wait_for_url(re.compile(rf".*/inbox/tasks/{task.pk}/$"))
    # instructions, summary and the form on the first screen
    assert "Check the bonus computed" in page.inner_text("[data-testid=description]")
    assert "€409.32" in page.inner_text("[data-testid=summary]")
    assert "€3,411.00" in page.inner_text("[data-testid=summary]")
    assert in_view(page, "[data-testid=summary]")
    assert in_view(page, "input[name=decision][value=approve]")
    assert no_sideways_scroll(page)
    page.screenshot(path=str(ARTIFACTS / f"{shot}-task.png"))

    # a refused submit: the error is beside its field, in view, with the cursor in the field
    page.check("input[name=decision][value=approve]")
    page.fill("#id_amount", "-10")
    page.get_by_role("button", name="Submit decision").click()
    page.wait_for_selector("[data-field=amount] .errorlist")
    assert page.inner_text("[data-field=amount] .errorlist") == "must be at least 0"
    page.wait_for_function("document.activeElement && document.activeElement.id === 'id_amount'")
    assert in_view(page, "[data-field=amount] .errorlist")
    page.screenshot(path=str(ARTIFACTS / f"{shot}-task-error.png"))

    # decides
    page.check("input[name=decision][value=approve]")
    page.fill("#id_amount", "409.32")
    page.fill("#id_comment", "Well deserved")
    page.get_by_role("button", name="Submit decision").click()
    page.wait_for_url(re.compile(r".*/inbox/\?tab=done"))
    assert "the process has moved on" in page.inner_text(".messages")
    done = page.locator(f"tr[data-task='{task.pk}']")
    assert "Approve" in done.inner_text()
    page.screenshot(path=str(ARTIFACTS / f"{shot}-done.png"), full_page=True)

    process = ProcessInstance.objects.get(pk=task.process_id)
    assert process.current_stage == "PAYOUT"
    assert process.variables["approve_bonus"]["decision"] == "approve"
    # the finished task says who decided and when, not "claimed by you"
    done.get_by_role("link", name="E003-2026-11").click()
    outcome = page.inner_text("[data-testid=outcome]")
    assert outcome.startswith("Approve by you on ") and "UTC" in outcome
    assert page.locator("[data-testid=claimed-by]").count() == 0


def test_manager_bulk_approves_on_a_phone(
    web_server, browser_page, asset_guard, import_definition, people
):
    from processes.models import TaskState
    from tests.tasks_inbox.test_bulk import quick, start

    import_definition(quick())
    tasks = [start("quick", f"Q-{n}") for n in (1, 2, 3)]
    page = browser_page
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{web_server.url}/accounts/login/")
    page.fill("#id_username", "mia")
    page.fill("#id_password", "pw")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/inbox/$"))

    page.check(f"[data-select='{tasks[0].pk}']")
    page.check(f"[data-select='{tasks[2].pk}']")
    page.fill("#bulk-form input[name=comment]", "all good")
    page.screenshot(path=str(ARTIFACTS / "manager-390-bulk.png"), full_page=True)
    page.click("[data-bulk=approve]")
    page.wait_for_selector("[data-testid=bulk-confirm]")  # first: how many, then decide
    assert page.inner_text("[data-testid=confirm-count]") == "2 cases"
    page.click("[data-testid=confirm]")
    page.wait_for_selector(".messages")
    assert "Approve: Q-1, Q-3 (2 tasks)." in page.inner_text(".messages")
    assert no_sideways_scroll(page)
    states = []
    for task in tasks:
        task.refresh_from_db()
        states.append(task.state)
    assert states == [TaskState.COMPLETED, TaskState.SCHEDULED, TaskState.COMPLETED]
    assert page.inner_text("[data-count=roles]") == "1"


def test_the_decider_reads_the_correction_and_the_tasks_one_word(
    web_server, browser_page, asset_guard, bonus_approval, people
):
    from guardian.shortcuts import assign_perm

    from processes.models import ProcessDefinition
    from tests.factories import UserFactory

    task = bonus_approval("E007-2026-11", "300")
    fixer = UserFactory(username="fixer", is_staff=True)
    assign_perm("processes.correct_variables", fixer, ProcessDefinition.objects.get(key="approval"))
    # an operator corrects the amount with a reason (the admin's page, the API: the same engine)
    engine.process_correct_variables(
        process_id=task.process_id,
        actor=Actor.for_user(fixer),
        set={"bonus.amount": 410},
        reason="The bonus system sent last year's amount (ticket HR-42)",
    )
    page = browser_page
    page.goto(f"{web_server.url}/accounts/login/?next=/inbox/tasks/{task.pk}/")
    page.fill("#id_username", "mia")
    page.fill("#id_password", "pw")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(rf".*/inbox/tasks/{task.pk}/$"))

    # the correction is in view above the form: who, why, what changed
    notes = page.locator("[data-testid=corrections]")
    assert in_view(page, "[data-testid=corrections]")
    text = notes.inner_text()
    assert "Corrected by fixer at " in text
    assert "The bonus system sent last year's amount (ticket HR-42)" in text
    assert "Bonus › amount: 300.00 → 410.00" in text
    box = page.locator("[data-testid=corrections]").bounding_box()
    form = page.locator("#decision-form").bounding_box()
    assert box["y"] < form["y"]

    # the task's state reads as the admin writes it: one word
    page.click("#details summary")
    assert page.inner_text("[data-testid=task-state] .badge").strip() == "waiting"
    steps = page.locator("#tasks-h ~ table .badge").all_inner_texts()
    assert steps == ["waiting", "not started", "not started"]
    assert "Variables corrected: Bonus › amount" in page.inner_text("[data-testid=timeline]")
    page.screenshot(path=str(ARTIFACTS / "decider-correction.png"), full_page=True)
