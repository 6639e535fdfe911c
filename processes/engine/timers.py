"""Timers: one function acts on a task whose ``wake_at`` is due — re-enqueue a step nobody
took, reclaim an expired lease, escalate an overdue human task, apply a wait's ``on_timeout``,
run a cancelled process's next compensation — and one on a process whose ``deadline`` passed."""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from processes import events, hooks, queue
from processes.engine import compensation, subprocess
from processes.engine._run import (
    MAX_LOST_LEASES,
    _advance,
    _after_task_failed_for_good,
    _lock,
    _lock_for_task,
    _Run,
    _transition,
)
from processes.events import Actor
from processes.models import (
    ACTIVE_PROCESS_STATES,
    OPEN_COMPENSATION_STATES,
    OPEN_TASK_STATES,
    TaskInstance,
    TaskState,
    TaskType,
)

logger = logging.getLogger(__name__)


@transaction.atomic
def task_wake(*, task_id, now=None) -> str:
    """Act on a task whose timer is due: re-enqueue, reclaim a lost lease, escalate, apply a
    wait's ``on_timeout``, or run the next compensation of a cancelling process."""
    now = now or timezone.now()
    run, task = _lock_for_task(task_id)
    run.actor = Actor.system("timer sweep")
    if task.wake_at is None or task.wake_at > now:
        return "not due"
    if task.state in OPEN_COMPENSATION_STATES:
        outcome = compensation.compensation_wake(run, task, now)
        run.touch(task)
        run.save()
        return outcome
    if run.process.state not in ACTIVE_PROCESS_STATES:
        task.wake_at = None
        run.touch(task)
        run.save()
        return "inactive"
    outcome = "cleared"
    if task.state == TaskState.SCHEDULED and task.type == TaskType.PROCESS:
        # Its children were never started (the process that scheduled it died after its
        # commit): start them now, after this commit; ``spawn`` does nothing the second time.
        task.wake_at = now + dt.timedelta(seconds=settings.FLOWDESK_REENQUEUE_AFTER)
        queue.on_commit(subprocess.spawn_all, [task.pk])
        outcome = "spawned"
    elif task.state == TaskState.SCHEDULED and task.handler:
        task.wake_at = now + dt.timedelta(seconds=settings.FLOWDESK_REENQUEUE_AFTER)
        run.to_enqueue.append(task)
        outcome = "enqueued"
    elif task.state == TaskState.RUNNING:
        task_spec = run.task_spec(task)
        if task.attempts >= task_spec.retry.max_attempts + MAX_LOST_LEASES:
            error = f"worker lost {task.attempts} times (lease expired)"
            task.last_error = error
            _transition(task, "fail")
            events.task_failed(process=run.process, actor=run.actor, task=task, error=error)
            _after_task_failed_for_good(run, task, error)
            outcome = "failed"
        else:
            _transition(task, "requeue")
            task.wake_at = now + dt.timedelta(seconds=settings.FLOWDESK_REENQUEUE_AFTER)
            events.task_requeued(process=run.process, actor=run.actor, task=task)
            run.to_enqueue.append(task)
            outcome = "requeued"
    elif task.state == TaskState.SCHEDULED and run.task_spec(task).escalation is not None:
        outcome = _escalate(run, task, now)
    elif task.state == TaskState.SCHEDULED and run.task_spec(task).wait_deadline is not None:
        outcome = _timed_out(run, task, now)
    else:
        task.wake_at = None
    run.touch(task)
    run.save()
    return outcome


def _timed_out(run: _Run, task: TaskInstance, now) -> str:
    """An external task's ``timeout`` or a human task's ``due`` passed: its ``on_timeout``."""
    deadline, task.wake_at = task.wake_at, None
    if task.timed_out_at is not None:
        return "cleared"
    action = run.task_spec(task).on_timeout
    events.task_timed_out(
        process=run.process, actor=run.actor, task=task, deadline=deadline, action=action
    )
    what = "no answer" if task.type == TaskType.SERVICE else "not decided"
    error = f"{what} by its deadline {deadline:%Y-%m-%d %H:%M:%S} UTC"
    if action == "skip":
        _transition(task, "skip")
        events.task_skipped(
            process=run.process,
            actor=run.actor,
            task=task,
            reason=error,
            cause=events.SKIP_DEADLINE,
        )
        _advance(run)
        return "skipped"
    if action == "fail":
        task.last_error = error
        _transition(task, "fail")
        events.task_failed(process=run.process, actor=run.actor, task=task, error=error)
        _after_task_failed_for_good(run, task, error)
        return "failed"
    # "incident": the task still waits (a late answer is taken and ends the incident)
    task.timed_out_at = now
    _after_task_failed_for_good(run, task, error)
    return "incident"


@transaction.atomic
def process_deadline(*, process_id, now=None) -> str:
    """The spec's process ``deadline`` passed: record it and alert the on-call (one SMS).

    The process keeps running (its state says what its tasks do); the alert names its oldest
    open task, the one it waits for.
    """
    now = now or timezone.now()
    run = _lock(process_id)
    run.actor = Actor.system("timer sweep")
    process = run.process
    deadline = process.deadline_at
    if deadline is None or deadline > now:
        return "not due"
    process.deadline_at = None
    if process.state not in ACTIVE_PROCESS_STATES:
        run.save()
        return "inactive"
    events.process_deadline_passed(process=process, actor=run.actor, deadline=deadline)
    waiting = sorted(
        (t for t in run.tasks.values() if t.state in OPEN_TASK_STATES or t.state == "failed"),
        key=lambda t: (t.scheduled_at or now, t.pk),
    )
    if waiting and run.spec.on_error_notify:
        error = f"process deadline {deadline:%Y-%m-%d %H:%M:%S} UTC passed"
        hooks.after_commit(
            "incident_opened",
            process_id=process.pk,
            task_id=waiting[0].pk,
            error=error,
            kind=f"deadline:{deadline.isoformat()}",
        )
    run.save()
    return "deadline"


def _escalate(run: _Run, task: TaskInstance, now) -> str:
    escalation = run.task_spec(task).escalation
    task.wake_at = None
    if escalation is None or task.escalated_at is not None:
        return "cleared"
    from_role = task.candidate_role
    task.escalated_at = now
    if escalation.to_role:
        task.candidate_role = escalation.to_role
        task.assignee = None
        task.claimed_by = None
    events.task_escalated(
        process=run.process,
        actor=run.actor,
        task=task,
        from_role=from_role,
        to_role=task.candidate_role,
    )
    if escalation.notify:
        hooks.after_commit(
            "task_escalated", task_id=task.pk, from_role=from_role, to_role=escalation.to_role
        )
    return "escalated"
