"""The control room in a real browser (Debian's chromium) against gunicorn + WhiteNoise: repair,
replay and cancel, each in the history with the admin as actor; screenshots of the definition,
instance and dashboard pages."""

import pytest
from django.urls import reverse

from processes import queue, worker
from processes.models import EventType, ProcessState, TaskState
from tests.admin.conftest import admin_login
from tests.admin.helpers import change_url, events, fresh, run_ready_steps, start, task
from tests.conftest import ARTIFACTS
from tests.factories import complete_task, definition_data

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def confirm(page, reason, stage=None):
    page.wait_for_selector("#fd-confirm-form")
    if stage is not None:
        page.select_option("#id_stage", stage)
    page.fill("#id_reason", reason)
    page.click("#fd-confirm")
    page.wait_for_selector(".messagelist")


def test_retry_in_the_browser_until_complete(
    web_server, browser_page, asset_guard, superuser, shop, flaky
):
    page = browser_page
    process = start("shop")
    run_ready_steps(process)
    assert fresh(process).state == ProcessState.FAILED
    admin_login(page, web_server.url)

    page.goto(web_server.url + change_url(process))
    assert page.locator(".fd-diagram .task.state-failed").count() == 1
    page.screenshot(path=str(ARTIFACTS / "admin-instance-incident.png"), full_page=True)

    flaky.failing = False
    page.click("a.fd-task-action:text('retry')")
    confirm(page, "accounting is back")
    assert "scheduled again" in page.inner_text(".messagelist")
    run_ready_steps(process)
    complete_task(task(process, "ship"), {})
    assert fresh(process).state == ProcessState.COMPLETED

    page.goto(web_server.url + change_url(process))
    assert page.locator(".fd-diagram .task.state-completed").count() == 3
    assert "boss (user)" in page.inner_text("#events-group")
    page.screenshot(path=str(ARTIFACTS / "admin-instance.png"), full_page=True)
    retried = events(process, EventType.TASK_RETRIED)[-1]
    assert (retried.actor_label, retried.data["reason"]) == ("boss", "accounting is back")


def test_replay_a_stage_in_the_browser(
    web_server, browser_page, asset_guard, superuser, import_definition
):
    page = browser_page
    import_definition(
        definition_data("two", stages=[("A", [{"task_name": "a"}]), ("B", [{"task_name": "b"}])])
    )
    process = start("two")
    for name in ("a", "b"):
        complete_task(task(process, name), {})
    admin_login(page, web_server.url)
    page.goto(web_server.url + change_url(process))
    page.click("#fd-replay-stage")
    confirm(page, "redo from A", stage="A")
    assert "Stage A" in page.inner_text(".messagelist")
    process = fresh(process)
    assert (process.state, process.current_stage) == (ProcessState.RUNNING, "A")
    assert task(process, "a").state == TaskState.SCHEDULED
    reopened = events(process, EventType.PROCESS_REOPENED)[-1]
    assert (reopened.actor_label, reopened.data["reason"]) == ("boss", "redo from A")


def test_cancel_with_compensation_in_the_browser(
    live_server, browser_page, superuser, shop, flaky, compensations, monkeypatch
):
    # pytest's live server (in this process): the test catches the compensation the engine queues
    page = browser_page
    flaky.failing = False
    process = start("shop")
    run_ready_steps(process)
    queued = []
    monkeypatch.setattr(
        queue, "enqueue_compensation", lambda task_id, timeout: queued.append(task_id)
    )
    admin_login(page, live_server.url)
    page.goto(live_server.url + change_url(process))
    page.click("#fd-cancel")
    confirm(page, "customer withdrew")
    assert "is cancelling" in page.inner_text(".messagelist")
    assert fresh(process).state == ProcessState.CANCELLING
    assert page.locator(".fd-badge.fd-cancelling").first.inner_text() == "cancelling"

    # the workers run what the engine queued after commit: newest completed task first
    assert queued == [task(process, "charge").pk]
    worker.run_compensation(queued[0])
    assert queued == [task(process, "charge").pk, task(process, "reserve").pk]
    worker.run_compensation(queued[1])
    assert [t for _, t, _ in compensations] == ["charge", "reserve"]
    page.reload()
    history = page.inner_text("#events-group")
    assert "compensation_completed" in history and "process_cancelled" in history
    assert fresh(process).state == ProcessState.CANCELLED
    cancelling = events(process, EventType.PROCESS_CANCELLING)[-1]
    assert (cancelling.actor_label, cancelling.data["reason"]) == ("boss", "customer withdrew")


def test_definition_and_dashboard_screenshots(
    web_server, browser_page, asset_guard, superuser, pizza
):
    page = browser_page
    for n in range(3):
        start("pizza", f"ORDER-{n}")
    admin_login(page, web_server.url)
    page.goto(web_server.url + reverse("admin:processes_processdefinition_change", args=[pizza.pk]))
    assert page.locator(".fd-diagram .task").count() == 5
    assert page.locator(".fd-diagram path.edge").count() == 2
    page.screenshot(path=str(ARTIFACTS / "admin-definition.png"), full_page=True)
    page.goto(web_server.url + reverse("admin:processes_processinstance_dashboard"))
    assert page.locator(".fd-card[data-state=running] .n").inner_text() == "3"
    page.screenshot(path=str(ARTIFACTS / "admin-dashboard.png"), full_page=True)
    page.goto(web_server.url + reverse("admin:processes_processinstance_changelist"))
    page.screenshot(path=str(ARTIFACTS / "admin-instances.png"), full_page=True)
