"""Timers: one function acts on a task whose ``wake_at`` is due — fire a TIMER task, re-enqueue
a step nobody took, reclaim an expired lease, escalate an overdue human task, apply a wait's
``on_timeout``, run a cancelled process's next compensation, queue again the start or the
cancellation of children — and one on a process whose ``deadline`` passed.

``timers_sweep`` selects what is due and calls them; ``timer_loop`` runs it to the second
(``manage.py workers``, ``manage.py timers``), the django-q2 schedule every minute as a fallback
(``worker.sweep_timers``)."""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import Min
from django.utils import timezone

from processes import events, hooks, queue
from processes.engine import compensation, schedules, waits
from processes.engine._run import (
    MAX_LOST_LEASES,
    _advance,
    _after_task_failed_for_good,
    _lock,
    _lock_for_task,
    _Run,
    _spec_for,
    _transition,
)
from processes.engine.absences import absences_apply
from processes.engine.handlers import handler_timeout
from processes.events import Actor
from processes.models import (
    ACTIVE_PROCESS_STATES,
    OPEN_COMPENSATION_STATES,
    OPEN_TASK_STATES,
    ProcessDefinition,
    ProcessInstance,
    ProcessState,
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
    if task.state == TaskState.CANCELLED and task.type == TaskType.PROCESS:
        outcome = _cancel_children_again(run, task, now)
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
        queue.on_commit(queue.enqueue_children, [task.pk])
        outcome = "spawned"
    elif task.state == TaskState.SCHEDULED and task.type in (TaskType.TIMER, TaskType.MESSAGE):
        outcome = waits.timer_fire(run, task, now)
        _advance(run)
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
            events.task_failed(log=run.log, actor=run.actor, task=task, error=error)
            _after_task_failed_for_good(run, task, error)
            outcome = "failed"
        else:
            _transition(task, "requeue")
            task.wake_at = now + dt.timedelta(seconds=settings.FLOWDESK_REENQUEUE_AFTER)
            events.task_requeued(log=run.log, actor=run.actor, task=task)
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


def _cancel_children_again(run: _Run, task: TaskInstance, now) -> str:
    """The timer of a PROCESS task its process's cancellation cancelled: while a child of the
    process is still active (the queued cancellation was lost), queue it again."""
    task.wake_at = None
    active = ProcessInstance.objects.filter(
        parent_id=run.process.pk, state__in=ACTIVE_PROCESS_STATES
    )
    if not active.exists():
        return "cleared"
    task.wake_at = now + dt.timedelta(seconds=settings.FLOWDESK_REENQUEUE_AFTER)
    queue.on_commit(queue.enqueue_cancel_children, run.process.pk)
    return "cancelling children"


def _timed_out(run: _Run, task: TaskInstance, now) -> str:
    """An external task's ``timeout`` or a human task's ``due`` passed: its ``on_timeout``."""
    deadline, task.wake_at = task.wake_at, None
    if task.timed_out_at is not None:
        return "cleared"
    action = run.task_spec(task).on_timeout
    events.task_timed_out(log=run.log, actor=run.actor, task=task, deadline=deadline, action=action)
    what = "no answer" if task.type == TaskType.SERVICE else "not decided"
    error = f"{what} by its deadline {deadline:%Y-%m-%d %H:%M:%S} UTC"
    if action == "skip":
        _transition(task, "skip")
        events.task_skipped(
            log=run.log,
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
        events.task_failed(log=run.log, actor=run.actor, task=task, error=error)
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
    events.process_deadline_passed(log=run.log, actor=run.actor, deadline=deadline)
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
        log=run.log,
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


def timers_sweep(*, limit: int = 1000) -> dict:
    """Act on every task whose timer is due (retry back-off, lost enqueue, lease, escalation,
    wait deadline, compensation, children), every process whose deadline passed, every
    absence that began and every scheduled start that is due; return how many of each outcome."""
    now = timezone.now()
    due = TaskInstance.objects.due_for_wake(now).order_by("wake_at")
    late = ProcessInstance.objects.filter(deadline_at__lte=now).order_by("deadline_at")
    outcomes: dict[str, int] = {}
    acted = 0
    for what, rows, act in (  # the tasks first: what they do may close a late process
        ("timer of task", due, lambda pk: task_wake(task_id=pk, now=now)),
        ("deadline of process", late, lambda pk: process_deadline(process_id=pk, now=now)),
    ):
        ids = list(rows.values_list("id", flat=True)[:limit])
        acted += len(ids)
        for pk in ids:
            try:
                outcome = act(pk)
            except Exception:  # one bad row must not stop the others: logged, counted
                logger.exception("%s %s failed", what, pk)
                outcome = "error"
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    try:  # absences that began: the open tasks their people hold are passed on
        handed = absences_apply()
    except Exception:
        logger.exception("sweep: handing over absent people's tasks failed")
        handed = 0
    if handed:
        outcomes["handed over (absence)"] = handed
    try:  # scheduled starts (each occurrence once: engine.schedules)
        started = schedules.schedules_run(now=now)
    except Exception:
        logger.exception("sweep: scheduled starts failed")
        started = {}
    for outcome, count in started.items():
        outcomes[f"schedule {outcome}"] = count
    if acted or handed or started:
        logger.info("sweep: %s", outcomes)
    return outcomes


def next_wake():
    """When the earliest timer (task ``wake_at`` or process ``deadline_at``) is due; None if none.

    Two index-only reads of the partial indexes ``task_wake_at`` and ``process_deadline_at``.
    """
    task = TaskInstance.objects.filter(wake_at__isnull=False).aggregate(m=Min("wake_at"))["m"]
    process = ProcessInstance.objects.filter(deadline_at__isnull=False).aggregate(
        m=Min("deadline_at")
    )["m"]
    found = [t for t in (task, process) if t is not None]
    return min(found) if found else None


def timer_loop(stop, *, tick: float | None = None, limit: int = 1000) -> None:
    """Run due timers to the second until ``stop`` (a ``threading.Event``) is set.

    One mechanism for every timer: sleep until the earliest ``wake_at``/``deadline_at`` (at
    most ``tick``, ``FLOWDESK_TIMER_TICK`` seconds, so a timer written meanwhile is seen within
    a tick), then ``timers_sweep``. A sweep that found ``limit`` due runs again at once. Run by
    ``manage.py workers`` (a thread of the supervisor) or ``manage.py timers``.
    """
    tick = settings.FLOWDESK_TIMER_TICK if tick is None else tick
    while not stop.is_set():
        try:
            if not connection.in_atomic_block:  # (a caller's transaction: a test)
                close_old_connections()
            outcome = timers_sweep(limit=limit)
            if sum(outcome.values()) >= limit:
                continue
            wake = next_wake()
        except Exception:
            logger.exception("timer loop: sweep failed; again in %ss", tick)
            wake = None
        wait = tick
        if wake is not None:
            wait = min(tick, max(0.0, (wake - timezone.now()).total_seconds()) + 0.005)
        stop.wait(wait)


def requeue_scheduled(*, limit: int = 10000, task_ids=None) -> int:
    """Enqueue every scheduled service step (and waiting compensation) again; return how many.

    Run after a cluster restart: with Redis, steps the dead cluster had taken from the broker
    (in its pusher or its queues) are gone, and waiting for ``FLOWDESK_REENQUEUE_AFTER`` would
    leave them idle for minutes. Enqueueing a step twice is harmless: ``tasks_start`` skips a
    step that is not startable or holds a live lease (``compensation_start`` a compensation that
    is not the head of its process). Work inside its retry back-off is left to the timer sweep.
    ``task_ids``: only these (a step a dead worker had taken).
    """
    now = timezone.now()
    waiting = TaskInstance.objects.filter(
        state=TaskState.COMPENSATING, process__state=ProcessState.CANCELLING
    )
    scheduled = TaskInstance.objects.filter(
        state=TaskState.SCHEDULED,
        type=TaskType.SERVICE,
        process__state__in=ACTIVE_PROCESS_STATES,
    ).exclude(handler="")
    if task_ids is not None:
        waiting, scheduled = waiting.filter(pk__in=task_ids), scheduled.filter(pk__in=task_ids)
    compensations = _with_timeouts(waiting.exclude(scheduled_at__gt=now).order_by("id"), limit)
    for task_id, timeout in compensations:
        queue.enqueue_compensation(task_id, timeout=timeout)
    steps = _with_timeouts(
        scheduled.exclude(scheduled_at__gt=now).order_by("scheduled_at", "id"), limit
    )
    for task_id, timeout in steps:
        queue.enqueue_step(task_id, timeout=timeout)
    return len(steps) + len(compensations)


def _with_timeouts(tasks, limit: int | None = None) -> list[tuple[int, int]]:
    """(id, handler timeout) of ``tasks`` (a TaskInstance query; the first ``limit``): what
    their work is queued with, each definition's spec read once."""
    rows = tasks.values_list("id", "name", "process__definition_id")
    specs: dict = {}
    found = []
    for task_id, name, definition_id in rows if limit is None else rows[:limit]:
        if definition_id not in specs:
            specs[definition_id] = _spec_for(ProcessDefinition.objects.get(pk=definition_id))
        found.append((task_id, handler_timeout(specs[definition_id].task(name))))
    return found
