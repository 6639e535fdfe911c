"""TIMER and MESSAGE tasks: waiting for a moment or for a message from another system.

A TIMER task's ``wake_at`` is when it fires: the timer sweep (``timers.task_wake``) completes
it then, the timer loop sleeping until the nearest ``wake_at``. A MESSAGE task records the
message name and correlation key it waits for (``engine.messages`` finds it by them); a message
buffered before it started waiting is delivered as it starts. Cancelling the process cancels
the task, which clears its timer and ends its wait.
"""

from __future__ import annotations

from django.utils import timezone

from processes import events
from processes import spec as spec_module
from processes.db import engine as db_engine
from processes.engine._run import _after_task_failed_for_good, _complete, _Run, _transition
from processes.engine.handlers import checked_result, result_breaks
from processes.models import ReceivedMessage, TaskInstance, TaskType

MAX_KEY = 200  # characters of a correlation key (TaskInstance.correlation_key)


def start_waiting(run: _Run, task: TaskInstance, task_spec, now) -> None:
    """A TIMER or MESSAGE task was scheduled: set when it fires, or what it waits for. A
    problem (no date-time at ``until``, no correlation key) fails it when its timer fires
    now (``last_error`` says why), after its ``task_scheduled``."""
    task.last_error = ""
    if task.type == TaskType.TIMER:
        task.wake_at = now + task_spec.wait if task_spec.wait is not None else now
        if task_spec.until is not None:
            try:
                task.wake_at = spec_module.moment(
                    spec_module.lookup(run.process.variables, task_spec.until)
                )
            except ValueError as exc:
                task.last_error = f"until: the variable {task_spec.until} {exc}"
        return
    message = task_spec.message
    key = spec_module.lookup(run.process.variables, message.key)
    task.message_name = message.name
    if isinstance(key, bool) or not isinstance(key, str | int) or not str(key).strip():
        task.last_error = f"message key: the variable {message.key} holds no correlation key"
        task.correlation_key, task.wake_at = "", now
        return
    task.correlation_key = str(key)[:MAX_KEY]


def timer_fire(run: _Run, task: TaskInstance, now) -> str:
    """A TIMER task's moment came: it completes (``fired_at``); one that could not wait (its
    ``last_error``) fails, an incident."""
    due, task.wake_at = task.wake_at, None
    if task.last_error:
        _fail(run, task, task.last_error)
        return "failed"
    if task.type != TaskType.TIMER:  # (a MESSAGE task's timer is only for its error)
        return "cleared"
    result = {"fired_at": now.isoformat(), "due_at": due.isoformat()}
    _complete(run, task, result)
    return "fired"


def _fail(run: _Run, task: TaskInstance, error: str) -> None:
    _transition(task, "fail")
    task.last_error = error
    events.task_failed(log=run.log, actor=run.actor, task=task, error=error)
    _after_task_failed_for_good(run, task, error)


def take_buffered(run: _Run, task: TaskInstance) -> None:
    """A MESSAGE task starts waiting: deliver the oldest message buffered for it, once."""
    if not task.correlation_key:
        return
    db_engine.lock_message(task.message_name, task.correlation_key)
    now = timezone.now()
    message = (
        ReceivedMessage.objects.select_for_update(skip_locked=True)
        .filter(
            name=task.message_name,
            correlation_key=task.correlation_key,
            delivered_at__isnull=True,
            buffer_until__gte=now,
        )
        .order_by("received_at", "pk")
        .first()
    )
    if message is None:
        return
    deliver(run, task, message, actor=run.actor)
    message.delivered_at = now
    message.reached = [{"process_id": str(run.process.pk), "task_name": task.name}]
    message.save(update_fields=["delivered_at", "reached"])


def deliver(run: _Run, task: TaskInstance, message: ReceivedMessage, *, actor) -> dict:
    """``message`` reaches ``task``: its data, checked against the task's ``result``, becomes
    the task's result; return the problems ({path: [messages]}) if it breaks the declaration
    (a buffered message then fails the task: nobody is there to answer 400)."""
    clean, problems = checked_result(run.task_spec(task), message.data)
    saved, run.actor = run.actor, actor
    run.log.occurred_at = message.occurred_at
    try:
        events.message_received(log=run.log, actor=actor, task=task, message=message)
        if problems:
            _fail(run, task, result_breaks(task, problems))
        else:
            _complete(run, task, clean)
    finally:
        run.actor = saved
    run.touch(task)
    return problems
