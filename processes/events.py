"""One creator per event type. The engine calls these inside its transaction, with the process
row locked, so the per-instance sequence number is gapless and ordered.

Every creator is keyword-only: ``process`` is the subject, ``actor`` who did it, ``task`` the task
concerned (if any). Events are buffered on the process object and written in one INSERT by
``flush`` at the end of the engine's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from processes import context, hooks
from processes.db import core as raw
from processes.models import (
    ActorType,
    DefinitionEvent,
    EventType,
    ProcessEvent,
    ProcessInstance,
    TaskInstance,
)


@dataclass(frozen=True)
class Actor:
    """Who caused an event: a user, an API client, the system (sweeps), or a worker."""

    type: str
    user: Any = None
    label: str = ""

    @classmethod
    def for_user(cls, user) -> Actor:
        is_api = getattr(user, "_flowdesk_api", False)
        return cls(
            type=ActorType.API if is_api else ActorType.USER,
            user=user,
            label=user.get_username(),
        )

    @classmethod
    def api(cls, user=None, label: str = "api") -> Actor:
        return cls(ActorType.API, user, user.get_username() if user is not None else label)

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(ActorType.SYSTEM, None, label)

    @classmethod
    def worker(cls, label: str = "worker") -> Actor:
        return cls(ActorType.WORKER, None, label)


SYSTEM = Actor.system()


def _append(
    *,
    process: ProcessInstance,
    type: str,
    actor: Actor,
    task: TaskInstance | None = None,
    data: dict | None = None,
) -> ProcessEvent:
    process.last_seq += 1
    correlation = context.correlation_id.get()
    if not correlation:  # no request or task bound one: the transaction gets its own
        correlation = process.__dict__.setdefault("_correlation_id", context.new_id())
    event = ProcessEvent(
        process=process,
        seq=process.last_seq,
        type=type,
        task=task,
        task_name=task.name if task is not None else "",
        actor_type=actor.type,
        actor_user=actor.user if actor.user is not None and actor.user.pk else None,
        actor_label=actor.label,
        created_at=timezone.now(),
        data=data or {},
        correlation_id=correlation,
        caused_by=context.caused_by.get(),
    )
    pending = process.__dict__.setdefault("_pending_events", [])
    pending.append(event)
    return event


def definition_event(*, definition, type: str, actor: Actor, data: dict | None = None):
    """``actor`` stored, published, retired or edited ``definition`` (written at once: a
    definition has no per-instance sequence)."""
    return DefinitionEvent.objects.create(
        definition=definition,
        type=type,
        actor_type=actor.type,
        actor_user=actor.user if actor.user is not None and actor.user.pk else None,
        actor_label=actor.label,
        created_at=timezone.now(),
        data=data or {},
    )


def take_pending(process: ProcessInstance) -> list[ProcessEvent]:
    """The buffered events, for a caller that writes them itself (``db.core.write``)."""
    return process.__dict__.pop("_pending_events", [])


def flush(process: ProcessInstance) -> list[ProcessEvent]:
    """Write the buffered events in one INSERT (see ``written``)."""
    pending = take_pending(process)
    if pending:
        raw.insert(pending)
    return written(process, pending)


def written(process: ProcessInstance, events: list[ProcessEvent]) -> list[ProcessEvent]:
    """``events`` were just inserted (by ``flush`` or ``db.core.write``): let ``events_written``
    listeners (the events-out outbox) write their rows in the same transaction."""
    process.__dict__.pop("_correlation_id", None)
    if events:
        hooks.within("events_written", process=process, events=events)
    return events


# --- process events -------------------------------------------------------------------------------


def process_started(*, process, actor, input: dict) -> ProcessEvent:
    """The actor started ``process`` with ``input`` as its first variables."""
    return _append(
        process=process,
        type=EventType.PROCESS_STARTED,
        actor=actor,
        data={
            "definition": process.definition_key,
            "version": process.definition.version,
            "business_key": process.business_key,
            "input": input,
        },
    )


def process_completed(*, process, actor) -> ProcessEvent:
    """The last stage ended; the actor is whoever completed the last task."""
    return _append(process=process, type=EventType.PROCESS_COMPLETED, actor=actor)


def process_failed(*, process, actor, task, error: str) -> ProcessEvent:
    """An incident opened on ``process`` because ``task`` failed for good."""
    return _append(
        process=process,
        type=EventType.PROCESS_FAILED,
        actor=actor,
        task=task,
        data={"error": error},
    )


def process_resumed(*, process, actor) -> ProcessEvent:
    """No failed task remains: the incident is resolved."""
    return _append(process=process, type=EventType.PROCESS_RESUMED, actor=actor)


def process_cancelled(*, process, actor, reason: str) -> ProcessEvent:
    return _append(
        process=process, type=EventType.PROCESS_CANCELLED, actor=actor, data={"reason": reason}
    )


def process_reopened(*, process, actor, reason: str, stage: str) -> ProcessEvent:
    """A replay brought ``process`` back to ``stage``."""
    return _append(
        process=process,
        type=EventType.PROCESS_REOPENED,
        actor=actor,
        data={"reason": reason, "stage": stage},
    )


def process_sent_back(*, process, actor, task, goto: str, rework: dict) -> ProcessEvent:
    """The actor decided ``task`` with a rework outcome: the process goes back to stage ``goto``
    for the next round; ``rework`` is the ``rework`` variable set for it (round, comment, ...)."""
    return _append(
        process=process,
        type=EventType.PROCESS_SENT_BACK,
        actor=actor,
        task=task,
        data={
            "outcome": rework.get("outcome"),
            "goto": goto,
            "round": rework.get("round"),
            "comment": rework.get("comment", ""),
            "rework": rework,
        },
    )


def process_migrated(
    *, process, actor, from_version: int, to_version: int, mapping: dict, dropped, added
) -> ProcessEvent:
    """The actor moved ``process`` to another version of its definition: ``mapping`` says which
    task became which, ``dropped`` and ``added`` the tasks that went and came."""
    return _append(
        process=process,
        type=EventType.PROCESS_MIGRATED,
        actor=actor,
        data={
            "from_version": from_version,
            "to_version": to_version,
            "mapping": mapping,
            "dropped": list(dropped),
            "added": list(added),
        },
    )


def subprocess_started(*, process, actor, task, definition: str, children: list) -> ProcessEvent:
    """The PROCESS ``task`` of ``process`` started ``children`` ({id, business_key}) of
    ``definition``; the actor is whoever scheduled the task."""
    return _append(
        process=process,
        type=EventType.SUBPROCESS_STARTED,
        actor=actor,
        task=task,
        data={"definition": definition, "children": children},
    )


def subprocess_finished(*, process, actor, task, child, state: str) -> ProcessEvent:
    """A child of ``task`` ended in ``state`` (completed or cancelled); the actor is the child."""
    return _append(
        process=process,
        type=EventType.SUBPROCESS_FINISHED,
        actor=actor,
        task=task,
        data={"child": str(child.pk), "business_key": child.business_key, "state": state},
    )


def stage_started(*, process, actor, stage: str) -> ProcessEvent:
    return _append(
        process=process, type=EventType.STAGE_STARTED, actor=actor, data={"stage": stage}
    )


def stage_completed(*, process, actor, stage: str) -> ProcessEvent:
    return _append(
        process=process, type=EventType.STAGE_COMPLETED, actor=actor, data={"stage": stage}
    )


def variables_changed(*, process, actor, changes: dict, reason: str) -> ProcessEvent:
    """A person with the ``correct_variables`` grant corrected variables; ``changes`` maps each
    variable path to ``{"before": ..., "after": ...}`` (a missing side means absent)."""
    return _append(
        process=process,
        type=EventType.VARIABLES_CHANGED,
        actor=actor,
        data={"changes": changes, "reason": reason},
    )


# --- task events ----------------------------------------------------------------------------------


def task_scheduled(
    *, process, actor, task, payload: dict | None = None, barred: dict | None = None
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
    return _append(
        process=process, type=EventType.TASK_SCHEDULED, actor=actor, task=task, data=data
    )


def task_started(*, process, actor, task) -> ProcessEvent:
    """A worker took ``task`` (attempt number in data)."""
    return _append(
        process=process,
        type=EventType.TASK_STARTED,
        actor=actor,
        task=task,
        data={"attempt": task.attempts, "idempotency_key": task.idempotency_key},
    )


def task_completed(*, process, actor, task, result: Any) -> ProcessEvent:
    data = {"result": result}
    if task.decided_by_id:
        data["decided_by"] = task.decided_by.get_username()
    return _append(
        process=process, type=EventType.TASK_COMPLETED, actor=actor, task=task, data=data
    )


def task_attempt_failed(*, process, actor, task, error: str, retry_at) -> ProcessEvent:
    return _append(
        process=process,
        type=EventType.TASK_ATTEMPT_FAILED,
        actor=actor,
        task=task,
        data={"error": error, "attempt": task.attempts, "retry_at": retry_at.isoformat()},
    )


def task_failed(*, process, actor, task, error: str) -> ProcessEvent:
    return _append(
        process=process,
        type=EventType.TASK_FAILED,
        actor=actor,
        task=task,
        data={"error": error, "attempts": task.attempts},
    )


def task_retried(*, process, actor, task, reason: str = "") -> ProcessEvent:
    return _append(
        process=process,
        type=EventType.TASK_RETRIED,
        actor=actor,
        task=task,
        data={"reason": reason},
    )


def task_requeued(*, process, actor, task) -> ProcessEvent:
    return _append(
        process=process,
        type=EventType.TASK_REQUEUED,
        actor=actor,
        task=task,
        data={"attempt": task.attempts},
    )


def task_skipped(*, process, actor, task, reason: str) -> ProcessEvent:
    return _append(
        process=process,
        type=EventType.TASK_SKIPPED,
        actor=actor,
        task=task,
        data={"reason": reason},
    )


def task_cancelled(*, process, actor, task) -> ProcessEvent:
    return _append(process=process, type=EventType.TASK_CANCELLED, actor=actor, task=task)


def task_reset(*, process, actor, task, reason: str) -> ProcessEvent:
    return _append(
        process=process,
        type=EventType.TASK_RESET,
        actor=actor,
        task=task,
        data={"reason": reason, "execution": task.execution},
    )


def task_duplicate(*, process, actor, task, event: str, data: Any = None) -> ProcessEvent:
    """A repeated or late event for ``task`` was recorded and ignored."""
    return _append(
        process=process,
        type=EventType.TASK_DUPLICATE,
        actor=actor,
        task=task,
        data={"event": event, "state": task.state, "data": data},
    )


def task_claimed(*, process, actor, task) -> ProcessEvent:
    return _append(process=process, type=EventType.TASK_CLAIMED, actor=actor, task=task)


def task_released(*, process, actor, task) -> ProcessEvent:
    return _append(process=process, type=EventType.TASK_RELEASED, actor=actor, task=task)


def task_delegated(*, process, actor, task, to_user, comment: str = "") -> ProcessEvent:
    return _append(
        process=process,
        type=EventType.TASK_DELEGATED,
        actor=actor,
        task=task,
        data={"to": to_user.get_username(), "comment": comment},
    )


def task_escalated(*, process, actor, task, from_role: str, to_role: str) -> ProcessEvent:
    return _append(
        process=process,
        type=EventType.TASK_ESCALATED,
        actor=actor,
        task=task,
        data={"from_role": from_role, "to_role": to_role},
    )


def task_reminded(*, process, actor, task, recipients: list[str]) -> ProcessEvent:
    return _append(
        process=process,
        type=EventType.TASK_REMINDED,
        actor=actor,
        task=task,
        data={"recipients": recipients},
    )


def compensation_run(*, process, actor, task, handler: str, outcome: str) -> ProcessEvent:
    return _append(
        process=process,
        type=EventType.COMPENSATION_RUN,
        actor=actor,
        task=task,
        data={"handler": handler, "outcome": outcome},
    )


def notification_sent(*, process, actor, task=None, channel: str, recipients, message: str):
    return _append(
        process=process,
        type=EventType.NOTIFICATION_SENT,
        actor=actor,
        task=task,
        data={"channel": channel, "recipients": list(recipients), "message": message},
    )


def notification_failed(*, process, actor, task=None, channel: str, error: str, recipients=()):
    data = {"channel": channel, "error": error}
    if recipients:
        data["recipients"] = list(recipients)
    return _append(
        process=process,
        type=EventType.NOTIFICATION_FAILED,
        actor=actor,
        task=task,
        data=data,
    )


# --- compensations of a cancelled process (the engine's own work, like steps) ----------------------


def process_cancelling(*, process, actor, reason: str, compensations: list[str]) -> ProcessEvent:
    """``actor`` cancelled ``process``; ``compensations`` (task names, in the order they run)
    must be undone before it is ``cancelled``."""
    return _append(
        process=process,
        type=EventType.PROCESS_CANCELLING,
        actor=actor,
        data={"reason": reason, "compensations": compensations},
    )


def compensation_scheduled(*, process, actor, task, handler: str, order: int) -> ProcessEvent:
    return _append(
        process=process,
        type=EventType.COMPENSATION_SCHEDULED,
        actor=actor,
        task=task,
        data={"handler": handler, "order": order},
    )


def compensation_started(*, process, actor, task) -> ProcessEvent:
    return _append(
        process=process,
        type=EventType.COMPENSATION_STARTED,
        actor=actor,
        task=task,
        data={"attempt": task.attempts},
    )


def compensation_completed(*, process, actor, task, handler: str, result) -> ProcessEvent:
    return _append(
        process=process,
        type=EventType.COMPENSATION_COMPLETED,
        actor=actor,
        task=task,
        data={"handler": handler, "result": result, "attempt": task.attempts},
    )


def compensation_attempt_failed(*, process, actor, task, error: str, retry_at) -> ProcessEvent:
    return _append(
        process=process,
        type=EventType.COMPENSATION_ATTEMPT_FAILED,
        actor=actor,
        task=task,
        data={"error": error, "attempt": task.attempts, "retry_at": retry_at.isoformat()},
    )


def compensation_failed(*, process, actor, task, error: str) -> ProcessEvent:
    return _append(
        process=process,
        type=EventType.COMPENSATION_FAILED,
        actor=actor,
        task=task,
        data={"error": error, "attempt": task.attempts},
    )


def compensation_requeued(*, process, actor, task) -> ProcessEvent:
    return _append(process=process, type=EventType.COMPENSATION_REQUEUED, actor=actor, task=task)


def compensation_retried(*, process, actor, task, reason: str) -> ProcessEvent:
    return _append(
        process=process,
        type=EventType.COMPENSATION_RETRIED,
        actor=actor,
        task=task,
        data={"reason": reason},
    )


def compensation_skipped(*, process, actor, task, reason: str) -> ProcessEvent:
    return _append(
        process=process,
        type=EventType.COMPENSATION_SKIPPED,
        actor=actor,
        task=task,
        data={"reason": reason},
    )


# --- deadlines on waits ---------------------------------------------------------------------------


def task_timed_out(*, process, actor, task, deadline, action: str) -> ProcessEvent:
    """``task`` waited past its ``timeout``/``due``; ``action`` is its spec's ``on_timeout``."""
    return _append(
        process=process,
        type=EventType.TASK_TIMED_OUT,
        actor=actor,
        task=task,
        data={"deadline": deadline.isoformat(), "action": action},
    )


def process_deadline_passed(*, process, actor, deadline) -> ProcessEvent:
    return _append(
        process=process,
        type=EventType.PROCESS_DEADLINE_PASSED,
        actor=actor,
        data={"deadline": deadline.isoformat()},
    )
