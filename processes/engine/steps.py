"""Service steps, as workers run them: take the lease, then complete or fail the attempt
(retry after back-off, or an incident); compensations of a cancelled process."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import OperationalError, transaction
from django.utils import timezone

from processes import context, events
from processes.engine import external
from processes.engine._run import (
    HUMAN_TASK_REFUSAL,
    TaskResult,
    _advance,
    _after_task_failed_for_good,
    _complete,
    _lock_for_task,
    _lock_tasks,
    _save_runs,
    _spec_for,
    _transition,
)
from processes.engine.handlers import (
    checked_result,
    handler_timeout,
    result_breaks,
    step_context,
)
from processes.errors import Conflict, InvalidInput
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

WAITING_REFUSAL = "a TIMER task fires by itself; a MESSAGE task is reached by POST /api/messages/"


@dataclass(frozen=True)
class StepLease:
    """A worker's right to run one step: who to call, with what, and until when."""

    task_id: int
    execution: int
    handler: str
    context: StepContext
    timeout: int
    cause: int | None = None  # the step's task_scheduled event (a chained step's is set here)
    correlation: str | None = None  # its message's, when a worker took several messages at once


def tasks_start(*, task_ids, actor: Actor, causes=None, correlations=None) -> list[StepLease]:
    """Take scheduled steps for a worker: their processes locked in id order, one write, one
    commit for all (the steps of one queue message, or of several a worker took together: group
    commit). Steps that are not startable (a stale delivery, a live lease elsewhere, a back-off)
    are left out, and so are ids of no task. ``causes`` and ``correlations`` (aligned with
    ``task_ids``) are each step's ``task_scheduled`` event and the correlation id its message
    carried (None: the ones bound to the worker's queue task).
    """
    task_ids = list(task_ids)
    try:
        return _tasks_start(task_ids, actor, causes, correlations)
    except OperationalError as exc:
        leases = []
        for at in _per_process(task_ids, exc):
            leases += _tasks_start(
                [task_ids[i] for i in at], actor, _pick(causes, at), _pick(correlations, at)
            )
        return leases


def _per_process(task_ids: list[int], exc: OperationalError) -> list[list[int]]:
    """The positions of ``task_ids`` by process, when ``exc`` is the deadlock of a transaction
    that locked several processes (a worker's group commit, in id order, against a child that
    locks its parent after itself): each process is then tried again on its own. Any other
    error goes on."""
    if getattr(exc.__cause__, "sqlstate", None) != "40P01" or transaction.get_autocommit() is False:
        raise exc
    owner = dict(TaskInstance.objects.filter(pk__in=task_ids).values_list("id", "process_id"))
    positions: dict = {}
    for index, task_id in enumerate(task_ids):
        positions.setdefault(owner.get(task_id), []).append(index)
    if len(positions) < 2:
        raise exc
    logger.warning("group commit of %s processes deadlocked: each on its own", len(positions))
    return list(positions.values())


def _pick(values, at: list[int]):
    return [values[i] for i in at if i < len(values)] if values else values


@transaction.atomic
def _tasks_start(task_ids: list[int], actor: Actor, causes, correlations) -> list[StepLease]:
    runs = _lock_tasks(task_ids)
    found = {t.pk: (run, t) for run in runs for t in run.tasks.values()}
    now = timezone.now()
    leases_of: dict = {}
    for index, task_id in enumerate(task_ids):
        run, task = found.get(task_id, (None, None))
        if task is None or not _startable(run, task, now):
            continue
        run.actor = actor
        cause = causes[index] if causes and index < len(causes) else None
        correlation = correlations[index] if correlations and index < len(correlations) else None
        with context.bound(cause=cause, correlation=correlation):
            lease = _lease(run, task, now)
        leases_of.setdefault(id(run), []).append(
            dataclasses.replace(lease, cause=cause, correlation=correlation)
        )
    _save_runs([run for run in runs if id(run) in leases_of])
    return [lease for run in runs for lease in leases_of.get(id(run), ())]


def task_start(*, task_id, actor: Actor) -> StepLease | None:
    """Take a scheduled step for a worker; None when there is nothing to run (stale delivery)."""
    leases = tasks_start(task_ids=[task_id], actor=actor)
    return leases[0] if leases else None


def _startable(run, task, now) -> bool:
    if run.process.state not in ACTIVE_PROCESS_STATES or not task.handler:
        return False
    if task.state == TaskState.RUNNING and task.wake_at and task.wake_at > now:
        return False  # another worker holds a live lease
    if task.state not in (TaskState.SCHEDULED, TaskState.RUNNING):
        return False
    # still inside its retry back-off: the sweep will enqueue it when due
    return not (task.state == TaskState.SCHEDULED and task.scheduled_at and task.scheduled_at > now)


def _lease(run, task, now) -> StepLease:
    """Start ``task`` (scheduled) for the worker acting in ``run``: the lease runs for its
    timeout plus the margin; a worker that vanishes leaves it to the timer sweep."""
    task_spec = run.task_spec(task)
    timeout = handler_timeout(task_spec)
    _transition(task, "start")
    task.wake_at = now + dt.timedelta(seconds=timeout + settings.FLOWDESK_LEASE_MARGIN)
    run.touch(task)
    events.task_started(log=run.log, actor=run.actor, task=task)
    return StepLease(
        task_id=task.pk,
        execution=task.execution,
        handler=task.handler,
        context=step_context(task, task_spec, run.process),
        timeout=timeout,
    )


def _take_next(run, within: float, limit: int = 1) -> list[StepLease]:
    """Eager dispatch: lease service steps this event just scheduled to the worker that caused
    it, in the same transaction (one commit for "done" and "next", no queue round trip), at most
    ``limit`` of them. Only a step whose timeout plus the lease margin fits in ``within`` seconds
    (what is left of the worker's queue task before django-q2 would stop it); the others are
    queued after commit as usual. Their ``cause`` is set once the events are written."""
    now = timezone.now()
    leases = []
    for task in list(run.to_enqueue):
        if len(leases) >= limit:
            break
        if task.scheduled_at and task.scheduled_at > now:
            continue
        if handler_timeout(run.task_spec(task)) + settings.FLOWDESK_LEASE_MARGIN > within:
            continue
        run.to_enqueue.remove(task)
        leases.append(_lease(run, task, now))
    return leases


def _with_causes(run, leases: list[StepLease]) -> list[StepLease]:
    """A chained step's events are caused by its own ``task_scheduled``, as a queued one's."""
    if not leases:
        return leases
    scheduled = {e.task_id: e.pk for e in run.written if e.type == EventType.TASK_SCHEDULED}
    return [dataclasses.replace(lease, cause=scheduled.get(lease.task_id)) for lease in leases]


def _joined(field: str, path: str) -> str:
    return field if path == "$" else f"{field}.{path}"


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
    field: str = "result",
    occurred_at=None,
    worker_id: str | None = None,
) -> TaskResult:
    """Complete a scheduled or running service task; a repeat is recorded as a duplicate and
    changes nothing. The result lands under the task's own name in the variables, nothing else.

    A result that breaks the task's declared ``result`` (or, undeclared, holds a control
    character or a non-finite number) is refused with InvalidInput, its fields under ``field``.

    ``execution`` (from a worker) guards against a late result of an execution replayed since.
    ``eager_within`` (a worker's seconds left): lease one newly ready step to it (``next_lease``).
    Human tasks are decided by a person (``task_decide``), never completed this way.
    ``occurred_at``: when it was done, as the sender said (on the event that records it).
    ``worker_id``: who answers a locked external task (``external.check_lock``).
    """
    run, task = _lock_for_task(task_id)
    run.actor = actor
    run.log.occurred_at = occurred_at
    if task.type != TaskType.HUMAN:  # (a human task is refused below, in its words)
        result, problems = checked_result(run.task_spec(task), result)
        if problems:
            raise InvalidInput(
                result_breaks(task, problems),
                fields={_joined(field, path): messages for path, messages in problems.items()},
            )
    done = _complete_step(run, task, result, execution, worker_id)
    next_leases = []
    if not done.duplicate and eager_within and run.to_enqueue:
        next_leases = _take_next(run, eager_within)
    run.save()
    if done.duplicate:
        return done
    next_leases = _with_causes(run, next_leases)
    return StepDone(task, next_lease=next_leases[0] if next_leases else None)


def _complete_step(run, task, result, execution, worker_id=None) -> TaskResult:
    """``task_complete``'s change to the loaded ``run`` (Conflict before anything changed)."""
    if task.type == TaskType.HUMAN:
        raise Conflict(HUMAN_TASK_REFUSAL)
    if task.type in (TaskType.TIMER, TaskType.MESSAGE):
        raise Conflict(WAITING_REFUSAL)
    if task.state == TaskState.COMPLETED or (execution is not None and execution != task.execution):
        events.task_duplicate(
            log=run.log, actor=run.actor, task=task, event="TaskCompleted", data=result
        )
        return TaskResult(task, duplicate=True)
    if run.process.state not in ACTIVE_PROCESS_STATES:
        raise Conflict(f"process is {run.process.state}")
    _answer_lock(task, worker_id)
    _complete(run, task, result)
    _advance(run)
    return TaskResult(task)


@transaction.atomic
def task_fail(
    *,
    task_id,
    actor: Actor,
    error: str,
    retryable: bool = True,
    execution: int | None = None,
    occurred_at=None,
    worker_id: str | None = None,
) -> TaskResult:
    """Record a failed attempt: retry after back-off while attempts remain, else open an incident.
    ``worker_id``: who answers a locked external task (``external.check_lock``)."""
    run, task = _lock_for_task(task_id)
    run.actor = actor
    run.log.occurred_at = occurred_at
    done = _fail_step(run, task, error, retryable, execution, worker_id)
    run.save()
    return done


def _fail_step(run, task, error: str, retryable: bool, execution, worker_id=None) -> TaskResult:
    """``task_fail``'s change to the loaded ``run`` (Conflict before anything changed)."""
    actor = run.actor
    error = (error or "unknown error")[:4000]
    if task.state == TaskState.FAILED or (execution is not None and execution != task.execution):
        events.task_duplicate(log=run.log, actor=actor, task=task, event="TaskFailed")
        return TaskResult(task, duplicate=True)
    if task.state not in (TaskState.SCHEDULED, TaskState.RUNNING):
        raise Conflict(f"cannot fail task {task.name!r}: it is {task.state}")
    _answer_lock(task, worker_id)
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
            log=run.log, actor=actor, task=task, error=error, retry_at=retry_at
        )
    else:
        _transition(task, "fail")
        events.task_failed(log=run.log, actor=actor, task=task, error=error)
        _after_task_failed_for_good(run, task, error)
    return TaskResult(task)


def _answer_lock(task, worker_id) -> None:
    """An answer to a locked external task: its owner's only, and it ends the lock."""
    external.check_lock(task, worker_id)
    task.locked_by, task.lock_expires_at = "", None


@dataclass(frozen=True)
class StepOutcome:
    """What a worker's handler did with a lease: a result, or an error (retryable or not)."""

    lease: StepLease
    result: Any = None
    error: str | None = None  # None: the step completed
    retryable: bool = True


def steps_report(
    *,
    outcomes: list[StepOutcome],
    actor: Actor,
    eager_within: float | None = None,
    eager_limit: int | None = None,
) -> list[StepLease]:
    """Report the outcomes of steps a worker ran together, of one process or several (group
    commit): their processes locked in id order, one write, one commit, each outcome applied as
    its own ``task_complete``/``task_fail`` would be (in order, its events caused by its own
    ``task_scheduled``). One refused (its process ended meanwhile) is logged and the others
    still count. Returns the leases of the steps they made ready that eager dispatch gives this
    worker next (at most ``eager_limit``, by default ``FLOWDESK_STEP_BATCH``)."""
    limit = settings.FLOWDESK_STEP_BATCH if eager_limit is None else eager_limit
    try:
        return _steps_report(outcomes, actor, eager_within, limit)
    except OperationalError as exc:
        leases = []
        for at in _per_process([outcome.lease.task_id for outcome in outcomes], exc):
            mine = [outcomes[i] for i in at]
            leases += _steps_report(mine, actor, eager_within, limit - len(leases))
        return leases


@transaction.atomic
def _steps_report(outcomes, actor: Actor, eager_within, limit: int) -> list[StepLease]:
    runs = _lock_tasks([outcome.lease.task_id for outcome in outcomes])
    found = {t.pk: (run, t) for run in runs for t in run.tasks.values()}
    next_leases = []
    for run in runs:
        run.actor = actor
        mine = [o for o in outcomes if found.get(o.lease.task_id, (None,))[0] is run]
        correlation = mine[0].lease.correlation
        with context.bound(correlation=correlation):
            for outcome in mine:
                _apply_outcome(run, found[outcome.lease.task_id][1], outcome)
            if eager_within and limit > len(next_leases) and run.to_enqueue:
                taken = _take_next(run, eager_within, limit - len(next_leases))
                next_leases += [
                    (run, dataclasses.replace(x, correlation=correlation)) for x in taken
                ]
    _save_runs(runs)
    return [
        lease
        for run in runs
        for lease in _with_causes(run, [x for r, x in next_leases if r is run])
    ]


def _apply_outcome(run, task, outcome: StepOutcome) -> None:
    """One outcome of ``steps_report`` applied to its loaded ``run``."""
    lease = outcome.lease
    try:
        with context.bound(cause=lease.cause):
            result = {} if outcome.result is None else outcome.result
            clean, problems = (
                checked_result(run.task_spec(task), result) if outcome.error is None else (None, {})
            )
            if outcome.error is None and not problems:
                _complete_step(run, task, clean, lease.execution)
            elif outcome.error is None:  # never reaches a person: a failed attempt
                _fail_step(run, task, result_breaks(task, problems), True, lease.execution)
            else:
                _fail_step(run, task, outcome.error, outcome.retryable, lease.execution)
    except Conflict as exc:
        logger.warning("outcome of step %s not recorded: %s", task.pk, exc)


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
    events.compensation_run(log=run.log, actor=actor, task=task, handler=handler, outcome=outcome)
    run.save()
