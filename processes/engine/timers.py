"""Timers: one function acts on a task whose ``wake_at`` is due — re-enqueue a step nobody
took, reclaim an expired lease, escalate an overdue human task."""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from processes import events, hooks
from processes.engine._run import (
    MAX_LOST_LEASES,
    _after_task_failed_for_good,
    _lock_for_task,
    _Run,
    _transition,
)
from processes.events import Actor
from processes.models import (
    ACTIVE_PROCESS_STATES,
    TaskInstance,
    TaskState,
    TaskType,
)

logger = logging.getLogger(__name__)


@transaction.atomic
def task_wake(*, task_id, now=None) -> str:
    """Act on a task whose timer is due: re-enqueue, reclaim a lost lease, or escalate."""
    now = now or timezone.now()
    run, task = _lock_for_task(task_id)
    run.actor = Actor.system("timer sweep")
    if task.wake_at is None or task.wake_at > now:
        return "not due"
    if run.process.state not in ACTIVE_PROCESS_STATES:
        task.wake_at = None
        run.touch(task)
        run.save()
        return "inactive"
    outcome = "cleared"
    if task.state == TaskState.SCHEDULED and task.handler:
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
    elif task.state == TaskState.SCHEDULED and task.type == TaskType.HUMAN:
        outcome = _escalate(run, task, now)
    else:
        task.wake_at = None
    run.touch(task)
    run.save()
    return outcome


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
