"""Compensations of a cancelled process: engine work like any step.

Cancelling a process whose completed tasks have ``compensate`` handlers puts it in
``cancelling`` and each such task in ``compensating``, numbered newest first. One compensation
runs at a time, in that order: it is leased to a worker (``attempts``, ``wake_at`` as for a
step), retried after the task's retry back-off, re-taken by the timer sweep when its lease
expires, and when it fails for good it is an incident (one SMS) that an operator retries or
skips. The process becomes ``cancelled`` once every compensation is completed or skipped.

A definition with ``"on_failure": "compensate"`` takes the same path when a task fails for good
(``undo_after_failure``): the other open tasks are cancelled, the completed ones undone, and the
process ends ``compensated``. The failed task stays ``failed`` meanwhile: that is how
``next_compensation`` tells a failure's undoing from a cancellation.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from processes import events, hooks, queue
from processes.engine._run import (
    MAX_LOST_LEASES,
    _lock_for_task,
    _Run,
    _transition,
)
from processes.engine.handlers import handler_timeout, step_context
from processes.engine.steps import StepLease
from processes.errors import Conflict
from processes.events import Actor
from processes.models import (
    OPEN_COMPENSATION_STATES,
    ProcessState,
    TaskInstance,
    TaskState,
    TaskType,
)

logger = logging.getLogger(__name__)

COMPENSATION_SUFFIX = ":compensate"
CANCELLABLE_STATES = (TaskState.PENDING, TaskState.SCHEDULED, TaskState.RUNNING, TaskState.FAILED)


def cancel_open_tasks(run: _Run, *, keep: TaskInstance | None = None) -> None:
    """Cancel every task not yet done (but ``keep``); a cancelled PROCESS task's children are
    cancelled after the commit, by queued work (its timer repeats that)."""
    may_have_children = False
    for task in run.tasks.values():
        if task is keep or task.state not in CANCELLABLE_STATES:
            continue
        _transition(task, "cancel")
        if task.type == TaskType.PROCESS:
            task.wake_at = timezone.now() + dt.timedelta(seconds=settings.FLOWDESK_REENQUEUE_AFTER)
            may_have_children = True
        run.touch(task)
        events.task_cancelled(log=run.log, actor=run.actor, task=task)
    if may_have_children:  # each child in a transaction of its own
        queue.on_commit(queue.enqueue_cancel_children, run.process.pk)


def undo_after_failure(run: _Run, failed: TaskInstance, error: str) -> None:
    """Within a task failing for good under ``on_failure: compensate``: stop the rest, undo the
    completed tasks newest first (as a cancellation does), then end ``compensated``."""
    cancel_open_tasks(run, keep=failed)
    reason = f"task {failed.name} failed: {error}"
    if not plan_compensations(run, reason):
        _transition(run.process, "finish_compensation")
        events.process_compensated(log=run.log, actor=run.actor, reason=reason)


def _undoing_failure(run: _Run) -> TaskInstance | None:
    return next((t for t in run.tasks.values() if t.state == TaskState.FAILED), None)


def plan_compensations(run: _Run, reason: str) -> bool:
    """Within ``process_cancel``: number the completed tasks with a ``compensate`` handler newest
    first and put the process in ``cancelling``; False when there is nothing to compensate."""
    process = run.process
    completed = [
        t
        for t in run.tasks.values()
        if t.state == TaskState.COMPLETED and run.task_spec(t).compensate
    ]
    if not completed:
        return False
    completed.sort(key=lambda t: (t.finished_at or process.created_at, t.pk), reverse=True)
    _transition(process, "begin_cancel")
    events.process_cancelling(
        log=run.log,
        actor=run.actor,
        reason=reason,
        compensations=[t.name for t in completed],
    )
    for order, task in enumerate(completed, start=1):
        _transition(task, "plan_compensation")
        task.compensation_order = order
        task.wake_at = None
        run.touch(task)
        events.compensation_scheduled(
            log=run.log,
            actor=run.actor,
            task=task,
            handler=run.task_spec(task).compensate,
            order=order,
        )
    next_compensation(run)
    return True


def next_compensation(run: _Run) -> None:
    """Queue the first open compensation if it waits for nobody; cancel the process when none
    is left. The one place that decides what a cancelling process does next."""
    process = run.process
    if process.state != ProcessState.CANCELLING:
        return
    open_ = sorted(
        (t for t in run.tasks.values() if t.state in OPEN_COMPENSATION_STATES),
        key=lambda t: t.compensation_order or 0,
    )
    if not open_:
        failed = _undoing_failure(run)
        if failed is not None:
            _transition(process, "finish_compensation")
            events.process_compensated(
                log=run.log, actor=run.actor, reason=f"task {failed.name} failed: compensated"
            )
        else:
            _transition(process, "finish_cancel")
            events.process_cancelled(log=run.log, actor=run.actor, reason="compensations done")
        return
    head = open_[0]
    if head.state == TaskState.COMPENSATING and head.wake_at is None:
        now = timezone.now()
        start_at = max(now, head.scheduled_at or now)
        head.wake_at = start_at + dt.timedelta(seconds=settings.FLOWDESK_REENQUEUE_AFTER)
        run.touch(head)
        if start_at <= now:
            run.to_compensate.append(head)


def _is_head(run: _Run, task: TaskInstance) -> bool:
    open_ = [t for t in run.tasks.values() if t.state in OPEN_COMPENSATION_STATES]
    return bool(open_) and min(open_, key=lambda t: t.compensation_order or 0) is task


@transaction.atomic
def compensation_start(*, task_id, actor: Actor) -> StepLease | None:
    """Lease the next compensation to a worker; None when there is nothing to run now."""
    run, task = _lock_for_task(task_id)
    run.actor = actor
    now = timezone.now()
    if run.process.state != ProcessState.CANCELLING or not _is_head(run, task):
        return None
    if task.state == TaskState.COMPENSATION_RUNNING and task.wake_at and task.wake_at > now:
        return None  # another worker holds a live lease
    if task.state not in (TaskState.COMPENSATING, TaskState.COMPENSATION_RUNNING):
        return None
    if task.scheduled_at and task.scheduled_at > now:
        return None  # inside its back-off: the timer sweep queues it when due
    timeout = handler_timeout(run.task_spec(task))
    _transition(task, "start_compensation")
    task.wake_at = now + dt.timedelta(seconds=timeout + settings.FLOWDESK_LEASE_MARGIN)
    run.touch(task)
    events.compensation_started(log=run.log, actor=actor, task=task)
    run.save()
    task.process = run.process
    task_spec = run.task_spec(task)
    return StepLease(
        task_id=task.pk,
        execution=task.execution,
        handler=task_spec.compensate,
        context=step_context(task, task_spec, task.process, suffix=COMPENSATION_SUFFIX),
        timeout=timeout,
    )


@transaction.atomic
def compensation_complete(*, task_id, actor: Actor, result: Any = None) -> bool:
    """The handler undid the task; the next compensation (or the cancellation) follows.
    False for a late repeat (changes nothing)."""
    run, task = _lock_for_task(task_id)
    run.actor = actor
    if task.state not in (TaskState.COMPENSATING, TaskState.COMPENSATION_RUNNING):
        return False
    _transition(task, "complete_compensation")
    run.touch(task)
    events.compensation_completed(
        log=run.log,
        actor=actor,
        task=task,
        handler=run.task_spec(task).compensate,
        result=result,
    )
    next_compensation(run)
    run.save()
    return True


@transaction.atomic
def compensation_fail(*, task_id, actor: Actor, error: str, retryable: bool = True) -> str:
    """Record a failed attempt: again after the task's retry back-off while attempts remain,
    else an incident (one SMS) the operator retries or skips."""
    run, task = _lock_for_task(task_id)
    run.actor = actor
    error = (error or "unknown error")[:4000]
    if task.state != TaskState.COMPENSATION_RUNNING:
        return "duplicate"
    task.last_error = error
    run.touch(task)
    policy = run.task_spec(task).retry
    if retryable and task.attempts < policy.max_attempts:
        retry_at = timezone.now() + policy.delay_after(task.attempts)
        _transition(task, "retry_compensation_later")
        task.scheduled_at = retry_at
        task.wake_at = retry_at
        events.compensation_attempt_failed(
            log=run.log, actor=actor, task=task, error=error, retry_at=retry_at
        )
        outcome = "attempt failed"
    else:
        _fail_for_good(run, task, error)
        outcome = "failed"
    run.save()
    return outcome


def _fail_for_good(run: _Run, task: TaskInstance, error: str) -> None:
    _transition(task, "fail_compensation")
    events.compensation_failed(log=run.log, actor=run.actor, task=task, error=error)
    error = f"compensation {run.task_spec(task).compensate} failed: {error}"
    # The incident (the SMS is keyed by this event); the process stays cancelling.
    events.process_failed(log=run.log, actor=run.actor, task=task, error=error)
    hooks.after_commit("incident_opened", process_id=run.process.pk, task_id=task.pk, error=error)


def compensation_wake(run: _Run, task: TaskInstance, now) -> str:
    """Within ``task_wake``: queue a compensation nobody took, reclaim an expired lease."""
    if run.process.state != ProcessState.CANCELLING or task.state not in (
        TaskState.COMPENSATING,
        TaskState.COMPENSATION_RUNNING,
    ):
        task.wake_at = None
        return "cleared"
    if task.state == TaskState.COMPENSATING:
        task.wake_at = now + dt.timedelta(seconds=settings.FLOWDESK_REENQUEUE_AFTER)
        if _is_head(run, task):
            run.to_compensate.append(task)
            return "enqueued"
        return "cleared"
    policy = run.task_spec(task).retry
    if task.attempts >= policy.max_attempts + MAX_LOST_LEASES:
        error = f"worker lost {task.attempts} times (lease expired)"
        task.last_error = error
        _fail_for_good(run, task, error)
        return "failed"
    _transition(task, "retry_compensation_later")
    task.wake_at = now + dt.timedelta(seconds=settings.FLOWDESK_REENQUEUE_AFTER)
    events.compensation_requeued(log=run.log, actor=run.actor, task=task)
    run.to_compensate.append(task)
    return "requeued"


def compensation_retry(run: _Run, task: TaskInstance, reason: str) -> None:
    """Within ``task_retry``: a failed compensation gets a fresh attempt budget."""
    if run.process.state != ProcessState.CANCELLING:
        raise Conflict(f"process is {run.process.state}")
    _transition(task, "retry_compensation")
    task.wake_at = None
    run.touch(task)
    events.compensation_retried(log=run.log, actor=run.actor, task=task, reason=reason)
    next_compensation(run)


def compensation_skip(run: _Run, task: TaskInstance, reason: str) -> None:
    """Within ``task_skip``: an operator decided this task needs no undoing."""
    if run.process.state != ProcessState.CANCELLING:
        raise Conflict(f"process is {run.process.state}")
    _transition(task, "skip_compensation")
    run.touch(task)
    events.compensation_skipped(log=run.log, actor=run.actor, task=task, reason=reason)
    next_compensation(run)
