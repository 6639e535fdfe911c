"""Events of a cancelled process's compensations, and of waits past their deadline."""

from __future__ import annotations

from processes.events.buffer import (
    _append,
)
from processes.models import (
    EventType,
    ProcessEvent,
)


def process_cancelling(*, log, actor, reason: str, compensations: list[str]) -> ProcessEvent:
    """``actor`` cancelled ``process``; ``compensations`` (task names, in the order they run)
    must be undone before it is ``cancelled``."""
    return _append(
        log=log,
        type=EventType.PROCESS_CANCELLING,
        actor=actor,
        data={"reason": reason, "compensations": compensations},
    )


def compensation_scheduled(*, log, actor, task, handler: str, order: int) -> ProcessEvent:
    return _append(
        log=log,
        type=EventType.COMPENSATION_SCHEDULED,
        actor=actor,
        task=task,
        data={"handler": handler, "order": order},
    )


def compensation_started(*, log, actor, task) -> ProcessEvent:
    return _append(
        log=log,
        type=EventType.COMPENSATION_STARTED,
        actor=actor,
        task=task,
        data={"attempt": task.attempts},
    )


def compensation_completed(*, log, actor, task, handler: str, result) -> ProcessEvent:
    return _append(
        log=log,
        type=EventType.COMPENSATION_COMPLETED,
        actor=actor,
        task=task,
        data={"handler": handler, "result": result, "attempt": task.attempts},
    )


def compensation_attempt_failed(*, log, actor, task, error: str, retry_at) -> ProcessEvent:
    return _append(
        log=log,
        type=EventType.COMPENSATION_ATTEMPT_FAILED,
        actor=actor,
        task=task,
        data={"error": error, "attempt": task.attempts, "retry_at": retry_at.isoformat()},
    )


def compensation_failed(*, log, actor, task, error: str) -> ProcessEvent:
    return _append(
        log=log,
        type=EventType.COMPENSATION_FAILED,
        actor=actor,
        task=task,
        data={"error": error, "attempt": task.attempts},
    )


def compensation_requeued(*, log, actor, task) -> ProcessEvent:
    return _append(log=log, type=EventType.COMPENSATION_REQUEUED, actor=actor, task=task)


def compensation_retried(*, log, actor, task, reason: str) -> ProcessEvent:
    return _append(
        log=log,
        type=EventType.COMPENSATION_RETRIED,
        actor=actor,
        task=task,
        data={"reason": reason},
    )


def compensation_skipped(*, log, actor, task, reason: str) -> ProcessEvent:
    return _append(
        log=log,
        type=EventType.COMPENSATION_SKIPPED,
        actor=actor,
        task=task,
        data={"reason": reason},
    )


def task_timed_out(*, log, actor, task, deadline, action: str) -> ProcessEvent:
    """``task`` waited past its ``timeout``/``due``; ``action`` is its spec's ``on_timeout``."""
    return _append(
        log=log,
        type=EventType.TASK_TIMED_OUT,
        actor=actor,
        task=task,
        data={"deadline": deadline.isoformat(), "action": action},
    )


def process_deadline_passed(*, log, actor, deadline) -> ProcessEvent:
    return _append(
        log=log,
        type=EventType.PROCESS_DEADLINE_PASSED,
        actor=actor,
        data={"deadline": deadline.isoformat()},
    )
