"""Events of one task: scheduled, started, completed, failed, claimed, escalated, notices..."""

from __future__ import annotations

from typing import Any

from processes.events.buffer import (
    _append,
)
from processes.models import (
    EventType,
    ProcessEvent,
)


def task_scheduled(
    *, log, actor, task, payload: dict | None = None, barred: dict | None = None
) -> ProcessEvent:
    """``task`` became ready; ``payload`` is the seed's StartTask message for external tasks;
    ``barred``: the spec's assignee could not be given the task (separation of duties)."""
    data: dict = {"stage": task.stage}
    if barred:
        data["assignee_barred"] = barred
    if payload is not None:
        data["payload"] = payload
    if task.candidate_role:
        data["role"] = task.candidate_role
    if task.assignee_id:
        data["assignee"] = task.assignee.get_username()
    if task.due_at:
        data["due_at"] = task.due_at.isoformat()
    if task.type == "TIMER" and task.wake_at:
        data["wake_at"] = task.wake_at.isoformat()  # when the timer fires
    if task.message_name:
        data["message"] = task.message_name
        data["correlation_key"] = task.correlation_key
    return _append(log=log, type=EventType.TASK_SCHEDULED, actor=actor, task=task, data=data)


def task_started(*, log, actor, task) -> ProcessEvent:
    """A worker took ``task`` (attempt number in data)."""
    return _append(
        log=log,
        type=EventType.TASK_STARTED,
        actor=actor,
        task=task,
        data={"attempt": task.attempts, "idempotency_key": task.idempotency_key},
    )


def task_completed(*, log, actor, task, result: Any, inline: bool = False) -> ProcessEvent:
    """``task`` is done with ``result``; ``inline``: a pure-compute step run in the transaction
    that made it ready (its only event: no ``task_scheduled``/``task_started`` before it)."""
    data = {"result": result}
    if inline:
        data["inline"] = True
    if task.decided_by_id:
        data["decided_by"] = task.decided_by.get_username()
    return _append(log=log, type=EventType.TASK_COMPLETED, actor=actor, task=task, data=data)


def message_received(*, log, actor, task, message) -> ProcessEvent:
    """``message`` (a ``ReceivedMessage``) reached the MESSAGE task ``task``; ``actor``: who
    sent it (its ``task_completed`` follows)."""
    data = {"message": message.name, "correlation_key": message.correlation_key}
    if message.message_id:
        data["message_id"] = message.message_id
    if message.pk:
        data["received_message"] = message.pk
    return _append(log=log, type=EventType.MESSAGE_RECEIVED, actor=actor, task=task, data=data)


def task_attempt_failed(*, log, actor, task, error: str, retry_at) -> ProcessEvent:
    return _append(
        log=log,
        type=EventType.TASK_ATTEMPT_FAILED,
        actor=actor,
        task=task,
        data={"error": error, "attempt": task.attempts, "retry_at": retry_at.isoformat()},
    )


def task_failed(*, log, actor, task, error: str) -> ProcessEvent:
    return _append(
        log=log,
        type=EventType.TASK_FAILED,
        actor=actor,
        task=task,
        data={"error": error, "attempts": task.attempts},
    )


def task_retried(*, log, actor, task, reason: str = "") -> ProcessEvent:
    return _append(
        log=log,
        type=EventType.TASK_RETRIED,
        actor=actor,
        task=task,
        data={"reason": reason},
    )


def task_requeued(*, log, actor, task) -> ProcessEvent:
    return _append(
        log=log,
        type=EventType.TASK_REQUEUED,
        actor=actor,
        task=task,
        data={"attempt": task.attempts},
    )


# Why a task was skipped (``task_skipped``'s ``cause``): who decided it follows from it.
SKIP_CONDITION = "condition"  # its condition was false when it became ready: the system's rule
SKIP_DEADLINE = "deadline"  # its ``on_timeout: skip`` deadline passed: the timer sweep
SKIP_OPERATOR = "operator"  # a person with the operate grant skipped it, with a reason
SKIP_CAUSES = (SKIP_CONDITION, SKIP_DEADLINE, SKIP_OPERATOR)


def task_skipped(*, log, actor, task, reason: str, cause: str) -> ProcessEvent:
    """``task`` will not run. ``cause``: "condition" (its condition was false when it became
    ready; the actor is the system, whose rule it is), "deadline" (its ``on_timeout: skip``
    deadline passed; the timer sweep) or "operator" (a person skipped it; ``reason`` is theirs)."""
    return _append(
        log=log,
        type=EventType.TASK_SKIPPED,
        actor=actor,
        task=task,
        data={"reason": reason, "cause": cause},
    )


def task_cancelled(*, log, actor, task) -> ProcessEvent:
    return _append(log=log, type=EventType.TASK_CANCELLED, actor=actor, task=task)


def task_reset(*, log, actor, task, reason: str) -> ProcessEvent:
    return _append(
        log=log,
        type=EventType.TASK_RESET,
        actor=actor,
        task=task,
        data={"reason": reason, "execution": task.execution},
    )


def task_duplicate(*, log, actor, task, event: str, data: Any = None) -> ProcessEvent:
    """A repeated or late event for ``task`` was recorded and ignored."""
    return _append(
        log=log,
        type=EventType.TASK_DUPLICATE,
        actor=actor,
        task=task,
        data={"event": event, "state": task.state, "data": data},
    )


def task_claimed(*, log, actor, task) -> ProcessEvent:
    return _append(log=log, type=EventType.TASK_CLAIMED, actor=actor, task=task)


def task_released(*, log, actor, task) -> ProcessEvent:
    return _append(log=log, type=EventType.TASK_RELEASED, actor=actor, task=task)


def task_delegated(*, log, actor, task, to_user, comment: str = "") -> ProcessEvent:
    return _append(
        log=log,
        type=EventType.TASK_DELEGATED,
        actor=actor,
        task=task,
        data={"to": to_user.get_username(), "comment": comment},
    )


def task_substituted(
    *, log, actor, task, absent: str, until: str, to: str | None, role: str, refused: str
) -> ProcessEvent:
    """``task`` was passed on because ``absent`` (who would hold it) is away until ``until``:
    to their substitute ``to``, or to ``role`` (no substitute, or ``refused`` says why the
    substitute may not take it). The actor is whoever caused the hand-over (the sweep, the
    person recording the absence, or the event that scheduled the task)."""
    return _append(
        log=log,
        type=EventType.TASK_SUBSTITUTED,
        actor=actor,
        task=task,
        data={"absent": absent, "until": until, "to": to, "role": role, "refused": refused},
    )


def task_reassigned(*, log, actor, task, from_user, from_role: str, reason: str) -> ProcessEvent:
    """An operator (or the system, for an absence) gave open ``task`` to another person or
    role; ``from_user``/``from_role``: who held it and its role before, ``reason`` why."""
    data = {"from_role": from_role, "to_role": task.candidate_role, "reason": reason}
    if from_user is not None:
        data["from"] = from_user.get_username()
    if task.assignee_id:
        data["to"] = task.assignee.get_username()
    return _append(log=log, type=EventType.TASK_REASSIGNED, actor=actor, task=task, data=data)


def task_escalated(*, log, actor, task, from_role: str, to_role: str) -> ProcessEvent:
    return _append(
        log=log,
        type=EventType.TASK_ESCALATED,
        actor=actor,
        task=task,
        data={"from_role": from_role, "to_role": to_role},
    )


def task_reminded(*, log, actor, task, recipients: list[str]) -> ProcessEvent:
    return _append(
        log=log,
        type=EventType.TASK_REMINDED,
        actor=actor,
        task=task,
        data={"recipients": recipients},
    )


def compensation_run(*, log, actor, task, handler: str, outcome: str) -> ProcessEvent:
    return _append(
        log=log,
        type=EventType.COMPENSATION_RUN,
        actor=actor,
        task=task,
        data={"handler": handler, "outcome": outcome},
    )


def notification_sent(*, log, actor, task=None, channel: str, recipients, message: str):
    return _append(
        log=log,
        type=EventType.NOTIFICATION_SENT,
        actor=actor,
        task=task,
        data={"channel": channel, "recipients": list(recipients), "message": message},
    )


def notification_failed(*, log, actor, task=None, channel: str, error: str, recipients=()):
    data = {"channel": channel, "error": error}
    if recipients:
        data["recipients"] = list(recipients)
    return _append(
        log=log,
        type=EventType.NOTIFICATION_FAILED,
        actor=actor,
        task=task,
        data=data,
    )
