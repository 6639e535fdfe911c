"""Service steps, as workers run them: take the lease, then complete or fail the attempt
(retry after back-off, or an incident); compensations of a cancelled process."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from processes import events
from processes.engine._run import (
    HUMAN_TASK_REFUSAL,
    TaskResult,
    _advance,
    _after_task_failed_for_good,
    _complete,
    _lock_for_task,
    _spec_for,
    _step_timeout,
    _transition,
)
from processes.engine.handlers import step_context
from processes.errors import Conflict
from processes.events import Actor
from processes.models import (
    ACTIVE_PROCESS_STATES,
    EventType,
    TaskInstance,
    TaskState,
    TaskType,
)
from processes.steps import StepContext

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepLease:
    """A worker's right to run one step: who to call, with what, and until when."""

    task_id: int
    execution: int
    handler: str
    context: StepContext
    timeout: int
    cause: int | None = None  # the step's task_scheduled event (a chained step's is set here)


@transaction.atomic
def task_start(*, task_id, actor: Actor) -> StepLease | None:
    """Take a scheduled step for a worker; None when there is nothing to run (stale delivery)."""
    run, task = _lock_for_task(task_id)
    run.actor = actor
    now = timezone.now()
    if run.process.state not in ACTIVE_PROCESS_STATES or not task.handler:
        return None
    if task.state == TaskState.RUNNING and task.wake_at and task.wake_at > now:
        return None  # another worker holds a live lease
    if task.state not in (TaskState.SCHEDULED, TaskState.RUNNING):
        return None
    if task.state == TaskState.SCHEDULED and task.scheduled_at and task.scheduled_at > now:
        return None  # still inside its retry back-off; the sweep will enqueue it when due
    lease = _lease(run, task, now)
    run.save()
    return lease


def _lease(run, task, now) -> StepLease:
    """Start ``task`` (scheduled) for the worker acting in ``run``: the lease runs for its
    timeout plus the margin; a worker that vanishes leaves it to the timer sweep."""
    task_spec = run.task_spec(task)
    timeout = _step_timeout(task_spec)
    _transition(task, "start")
    task.wake_at = now + dt.timedelta(seconds=timeout + settings.FLOWDESK_LEASE_MARGIN)
    run.touch(task)
    events.task_started(process=run.process, actor=run.actor, task=task)
    return StepLease(
        task_id=task.pk,
        execution=task.execution,
        handler=task.handler,
        context=step_context(task, task_spec, run.process),
        timeout=timeout,
    )


def _take_next(run, within: float) -> StepLease | None:
    """Eager dispatch: lease one of the service steps this event just scheduled to the worker
    that caused it, in the same transaction (one commit for "done" and "next", no queue round
    trip). Only a step whose timeout plus the lease margin fits in ``within`` seconds (what is
    left of the worker's queue task before django-q2 would stop it); the others are queued
    after commit as usual."""
    now = timezone.now()
    for task in run.to_enqueue:
        if task.scheduled_at and task.scheduled_at > now:
            continue
        if _step_timeout(run.task_spec(task)) + settings.FLOWDESK_LEASE_MARGIN > within:
            continue
        run.to_enqueue.remove(task)
        return _lease(run, task, now)
    return None


@dataclass(frozen=True)
class StepDone(TaskResult):
    """A completed step and, under eager dispatch, the lease of the step to run next (or None)."""

    next_lease: StepLease | None = None


@transaction.atomic
def task_complete(
    *,
    task_id,
    actor: Actor,
    result: Any = None,
    execution: int | None = None,
    eager_within: float | None = None,
) -> TaskResult:
    """Complete a scheduled or running service task; a repeat is recorded as a duplicate and
    changes nothing. The result lands under the task's own name in the variables, nothing else.

    ``execution`` (from a worker) guards against a late result of an execution replayed since.
    ``eager_within`` (a worker's seconds left): lease one newly ready step to it (``next_lease``).
    Human tasks are decided by a person (``task_decide``), never completed this way.
    """
    run, task = _lock_for_task(task_id)
    run.actor = actor
    if task.type == TaskType.HUMAN:
        raise Conflict(HUMAN_TASK_REFUSAL)
    if task.state == TaskState.COMPLETED or (execution is not None and execution != task.execution):
        events.task_duplicate(
            process=run.process, actor=actor, task=task, event="TaskCompleted", data=result
        )
        run.save()
        return TaskResult(task, duplicate=True)
    if run.process.state not in ACTIVE_PROCESS_STATES:
        raise Conflict(f"process is {run.process.state}")
    _complete(run, task, result)
    _advance(run)
    next_lease = _take_next(run, eager_within) if eager_within and run.to_enqueue else None
    run.save()
    if next_lease is not None:
        scheduled = next(
            (
                e.pk
                for e in run.written
                if e.type == EventType.TASK_SCHEDULED and e.task_id == next_lease.task_id
            ),
            None,
        )
        next_lease = dataclasses.replace(next_lease, cause=scheduled)
    return StepDone(task, next_lease=next_lease)


@transaction.atomic
def task_fail(
    *, task_id, actor: Actor, error: str, retryable: bool = True, execution: int | None = None
) -> TaskResult:
    """Record a failed attempt: retry after back-off while attempts remain, else open an incident."""
    run, task = _lock_for_task(task_id)
    run.actor = actor
    error = (error or "unknown error")[:4000]
    if task.state == TaskState.FAILED or (execution is not None and execution != task.execution):
        events.task_duplicate(process=run.process, actor=actor, task=task, event="TaskFailed")
        run.save()
        return TaskResult(task, duplicate=True)
    if task.state not in (TaskState.SCHEDULED, TaskState.RUNNING):
        raise Conflict(f"cannot fail task {task.name!r}: it is {task.state}")
    task_spec = run.task_spec(task)
    task.last_error = error
    run.touch(task)
    if (
        retryable
        and task.handler
        and task.state == TaskState.RUNNING
        and task.attempts < task_spec.retry.max_attempts
    ):
        retry_at = timezone.now() + task_spec.retry.delay_after(task.attempts)
        _transition(task, "retry_later")
        task.scheduled_at = retry_at  # "scheduled for": a worker won't start it earlier
        task.wake_at = retry_at
        events.task_attempt_failed(
            process=run.process, actor=actor, task=task, error=error, retry_at=retry_at
        )
    else:
        _transition(task, "fail")
        events.task_failed(process=run.process, actor=actor, task=task, error=error)
        _after_task_failed_for_good(run, task, error)
    run.save()
    return TaskResult(task)


def compensation_context(*, task_id) -> tuple[str, StepContext] | None:
    """What a worker needs to run ``task_id``'s compensation handler, or None if it has none."""
    task = TaskInstance.objects.select_related("process", "process__definition").get(pk=task_id)
    task_spec = _spec_for(task.process.definition).task(task.name)
    if not task_spec.compensate:
        return None
    ctx = step_context(task, task_spec, task.process, suffix=":compensate")
    return task_spec.compensate, ctx


@transaction.atomic
def compensation_record(*, task_id, actor: Actor, handler: str, outcome: str) -> None:
    run, task = _lock_for_task(task_id)
    events.compensation_run(
        process=run.process, actor=actor, task=task, handler=handler, outcome=outcome
    )
    run.save()
