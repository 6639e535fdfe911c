"""Operating actions through the Django test client: each calls the engine with the admin as
actor and lands in the history."""

import pytest
from django.urls import reverse

from processes import engine, queue, worker
from processes.models import EventType, ProcessState, TaskState
from tests.admin.helpers import (
    SYSTEM,
    change_url,
    events,
    fresh,
    run_ready_steps,
    start,
    task,
    task_action_url,
)
from tests.factories import UserFactory, complete_task, definition_data

pytestmark = pytest.mark.django_db


def failed_shop_process(flaky):
    process = start("shop")
    run_ready_steps(process)  # reserve completes, charge fails for good
    assert fresh(process).state == ProcessState.FAILED
    assert task(process, "charge").state == TaskState.FAILED
    return process


def test_retry_a_failed_task_until_the_process_completes(shop, flaky, admin_client):
    # given a process whose charge step failed for good (an open incident)
    process = failed_shop_process(flaky)
    url = task_action_url(process, "charge", "retry")

    # the action asks for confirmation and a reason first
    page = admin_client.get(url)
    assert page.status_code == 200
    assert b"retry this task" in page.content and b'name="reason"' in page.content
    refused = admin_client.post(url, {"reason": "   "})
    assert refused.status_code == 200 and b"required" in refused.content
    assert task(process, "charge").state == TaskState.FAILED

    # when the admin confirms
    flaky.failing = False
    response = admin_client.post(url, {"reason": "accounting is back"}, follow=True)

    # then the task is scheduled again, the incident is resolved, and the history says who did it
    assert response.redirect_chain[-1][0] == change_url(process)
    assert b"scheduled again" in response.content
    assert task(process, "charge").state == TaskState.SCHEDULED
    assert fresh(process).state == ProcessState.RUNNING
    retried = events(process, EventType.TASK_RETRIED)[-1]
    assert retried.actor_type == "user" and retried.actor_label == "admin"
    assert retried.actor_user.username == "admin"
    assert retried.data["reason"] == "accounting is back"

    # and the worker finishes the step, the external task completes, the process completes
    run_ready_steps(process)
    complete_task(task(process, "ship"), {})
    assert fresh(process).state == ProcessState.COMPLETED
    assert fresh(process).business_status == "PAID"
    page = admin_client.get(change_url(process))
    assert b"task_retried" in page.content and b"admin (user)" in page.content


def test_retry_of_a_task_that_is_not_failed_shows_the_engine_error(shop, flaky, admin_client):
    process = start("shop")
    run_ready_steps(process)
    flaky.failing = False
    engine.task_retry(task_id=task(process, "charge").pk, actor=SYSTEM)
    run_ready_steps(process)  # charge completed now
    response = admin_client.post(
        task_action_url(process, "charge", "retry"), {"reason": "again"}, follow=True
    )
    assert response.status_code == 200
    assert b"Could not retry this task" in response.content
    assert b"it is completed" in response.content  # the engine's own message


def test_retry_of_a_task_already_scheduled_again_changes_nothing(shop, flaky, admin_client):
    process = failed_shop_process(flaky)
    url = task_action_url(process, "charge", "retry")
    admin_client.post(url, {"reason": "once"})
    response = admin_client.post(url, {"reason": "twice"}, follow=True)
    assert b"was already scheduled: nothing changed" in response.content
    assert len(events(process, EventType.TASK_RETRIED)) == 1


def test_skip_a_task_needs_a_reason_and_is_recorded(shop, flaky, admin_client):
    process = failed_shop_process(flaky)
    url = task_action_url(process, "charge", "skip")
    assert admin_client.post(url, {"reason": ""}).status_code == 200
    assert task(process, "charge").state == TaskState.FAILED

    admin_client.post(url, {"reason": "paid by bank transfer"})

    assert task(process, "charge").state == TaskState.SKIPPED
    assert fresh(process).state == ProcessState.RUNNING
    assert task(process, "ship").state == TaskState.SCHEDULED
    skipped = events(process, EventType.TASK_SKIPPED)[-1]
    assert (skipped.actor_label, skipped.data["reason"]) == ("admin", "paid by bank transfer")


def test_replay_a_stage(import_definition, admin_client):
    # given a completed two-stage process of external tasks
    import_definition(
        definition_data(
            "twostage",
            stages=[
                ("A", [{"task_name": "a1"}, {"task_name": "a2", "parent_task": ["a1"]}]),
                ("B", [{"task_name": "b1"}]),
            ],
        )
    )
    process = start("twostage")
    for name in ("a1", "a2", "b1"):
        complete_task(task(process, name), {"n": name})
    assert fresh(process).state == ProcessState.COMPLETED
    url = reverse("admin:processes_processinstance_replay_stage", args=[process.pk])
    page = admin_client.get(url)
    assert b'<option value="A">' in page.content and b'<option value="B">' in page.content

    # when the admin replays stage A
    response = admin_client.post(url, {"stage": "A", "reason": "customer data fixed"})
    assert response.status_code == 302

    # then A and B run again from the start
    process = fresh(process)
    assert process.state == ProcessState.RUNNING
    assert process.current_stage == "A"
    assert task(process, "a1").state == TaskState.SCHEDULED
    assert task(process, "a2").state == TaskState.PENDING
    assert task(process, "b1").state == TaskState.PENDING
    assert task(process, "a1").execution == 2
    reopened = events(process, EventType.PROCESS_REOPENED)[-1]
    assert reopened.actor_label == "admin" and reopened.data["reason"] == "customer data fixed"
    resets = events(process, EventType.TASK_RESET)
    assert {e.task_name for e in resets} == {"a1", "a2", "b1"}
    assert all(e.actor_label == "admin" for e in resets)

    # and it can complete again
    for name in ("a1", "a2", "b1"):
        complete_task(task(process, name), {})
    assert fresh(process).state == ProcessState.COMPLETED


def test_replay_one_task(import_definition, admin_client):
    import_definition(
        definition_data(
            "replay1",
            stages=[("A", [{"task_name": "x"}, {"task_name": "y"}])],
        )
    )
    process = start("replay1")
    for name in ("x", "y"):
        complete_task(task(process, name), {})
    admin_client.post(task_action_url(process, "x", "replay"), {"reason": "resend"})
    assert task(process, "x").state == TaskState.SCHEDULED
    assert task(process, "y").state == TaskState.COMPLETED
    assert events(process, EventType.TASK_RESET)[-1].actor_label == "admin"


def test_replay_stage_rejects_unknown_stage(import_definition, admin_client):
    import_definition(definition_data("one"))
    process = start("one")
    url = reverse("admin:processes_processinstance_replay_stage", args=[process.pk])
    response = admin_client.post(url, {"stage": "NOPE", "reason": "x"})
    assert response.status_code == 200
    assert b"Select a valid choice" in response.content


def test_cancel_runs_compensation_newest_first(
    shop, flaky, compensations, admin_client, django_capture_on_commit_callbacks, monkeypatch
):
    # given a process whose two compensable steps completed and whose shipping waits
    flaky.failing = False
    process = start("shop")
    run_ready_steps(process)
    assert task(process, "ship").state == TaskState.SCHEDULED
    enqueued = []
    monkeypatch.setattr(
        queue, "enqueue_compensation", lambda task_id, timeout: enqueued.append(task_id)
    )

    # when the admin cancels it (confirming with a reason)
    url = reverse("admin:processes_processinstance_cancel", args=[process.pk])
    assert b"Yes, cancel this process" in admin_client.get(url).content
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, {"reason": "customer withdrew"})
    assert response.status_code == 302

    # then open tasks are cancelled; the process is cancelling while the newest completed task
    # is compensated first
    process = fresh(process)
    assert process.state == ProcessState.CANCELLING
    assert task(process, "ship").state == TaskState.CANCELLED
    assert enqueued == [task(process, "charge").pk]
    cancelling = events(process, EventType.PROCESS_CANCELLING)[-1]
    assert cancelling.actor_label == "admin" and cancelling.data["reason"] == "customer withdrew"
    page = admin_client.get(change_url(process)).content.decode()
    assert ">cancelling</span>" in page and ">compensation waiting</span>" in page

    # and the workers run the handlers in that order, each recorded in the history
    with django_capture_on_commit_callbacks(execute=True):
        worker.run_compensation(enqueued[0])
    with django_capture_on_commit_callbacks(execute=True):
        worker.run_compensation(enqueued[1])
    assert [(h, t) for h, t, _ in compensations] == [
        ("test_admin.refund", "charge"),
        ("test_admin.release", "reserve"),
    ]
    runs = events(process, EventType.COMPENSATION_COMPLETED)
    assert [e.task_name for e in runs] == ["charge", "reserve"]
    assert fresh(process).state == ProcessState.CANCELLED

    # a cancelled process offers no more actions
    page = admin_client.get(change_url(process))
    assert b"Cancel process" not in page.content and b"Replay a stage" not in page.content


def test_cancel_twice_shows_an_error_not_a_500(shop, flaky, admin_client):
    process = start("shop")
    url = reverse("admin:processes_processinstance_cancel", args=[process.pk])
    admin_client.post(url, {"reason": "first"})
    response = admin_client.post(url, {"reason": "second"}, follow=True)
    assert response.status_code == 200
    assert b"Could not cancel this process" in response.content


def test_actions_need_the_operate_grant(shop, flaky, client):
    process = failed_shop_process(flaky)
    viewer = UserFactory(username="viewer", is_staff=True)
    # a model-wide permission grants nothing per definition; view_process on "shop" shows it
    from django.contrib.auth.models import Permission
    from guardian.shortcuts import assign_perm

    viewer.user_permissions.add(Permission.objects.get(codename="change_processinstance"))
    assign_perm("processes.view_process", viewer, shop)
    client.force_login(viewer)
    page = client.get(change_url(process))
    assert page.status_code == 200
    assert b"fd-task-action" not in page.content and b"Cancel process" not in page.content
    assert client.get(task_action_url(process, "charge", "retry")).status_code == 403
    response = client.post(task_action_url(process, "charge", "retry"), {"reason": "x"})
    assert response.status_code == 403
    assert task(process, "charge").state == TaskState.FAILED


def test_unknown_task_or_action_is_404(shop, flaky, admin_client):
    process = start("shop")
    other = start("shop", business_key="B-2")
    bad_task = reverse(
        "admin:processes_processinstance_task_action",
        args=[process.pk, task(other, "reserve").pk, "retry"],
    )
    assert admin_client.get(bad_task).status_code == 404
    assert admin_client.get(task_action_url(process, "reserve", "explode")).status_code == 404


def test_instance_page_shows_tasks_events_diagram_and_links(shop, flaky, admin_client):
    process = failed_shop_process(flaky)
    page = admin_client.get(change_url(process)).content.decode()
    assert "History (append-only)" in page
    assert "process_started" in page and "task_failed" in page
    assert 'class="fd-diagram"' in page and "state-failed" in page
    assert task_action_url(process, "charge", "retry") in page
    assert "Replay a stage" in page and "Cancel process" in page
    # state fields are not editable anywhere on the page
    assert 'name="state"' not in page and 'name="tasks-0-state"' not in page


def test_a_failed_compensation_is_retried_or_skipped_from_the_task_table(
    shop, flaky, compensations, admin_client, django_capture_on_commit_callbacks, monkeypatch
):
    # given a cancelled shop order whose refund (charge's compensation) failed for good
    flaky.failing = False
    process = start("shop")
    run_ready_steps(process)
    from processes import steps
    from processes.steps import PermanentStepError

    def refund_refused(ctx):
        raise PermanentStepError("bank refused the refund")

    steps.registry.unregister("test_admin.refund")
    steps.registry.register("test_admin.refund", refund_refused)
    queued = []
    monkeypatch.setattr(
        queue, "enqueue_compensation", lambda task_id, timeout: queued.append(task_id)
    )
    with django_capture_on_commit_callbacks(execute=True):
        engine.process_cancel(process_id=process.pk, actor=engine.SYSTEM, reason="withdrawn")
    with django_capture_on_commit_callbacks(execute=True):
        worker.run_compensation(task(process, "charge").pk)
    assert task(process, "charge").state == TaskState.COMPENSATION_FAILED

    # then the task table offers retry and skip on it, and no replay on a cancelling process
    page = admin_client.get(change_url(process)).content.decode()
    assert task_action_url(process, "charge", "retry") in page
    assert task_action_url(process, "charge", "skip") in page
    assert task_action_url(process, "charge", "replay") not in page
    assert "Replay a stage" not in page

    # retry: queued again
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            task_action_url(process, "charge", "retry"), {"reason": "bank is back"}
        )
    assert response.status_code == 302
    assert task(process, "charge").state == TaskState.COMPENSATING
    assert queued == [task(process, "charge").pk] * 2

    # skip: the next compensation (reserve) is queued
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            task_action_url(process, "charge", "skip"), {"reason": "refunded by phone"}
        )
    assert response.status_code == 302
    assert task(process, "charge").state == TaskState.SKIPPED
    assert queued[-1] == task(process, "reserve").pk
    with django_capture_on_commit_callbacks(execute=True):
        worker.run_compensation(task(process, "reserve").pk)
    assert fresh(process).state == ProcessState.CANCELLED
    assert events(process, EventType.COMPENSATION_SKIPPED)[-1].actor_label == "admin"
