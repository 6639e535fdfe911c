"""Events of a whole process: started, completed, failed, cancelled, sent back, migrated..."""

from __future__ import annotations

from processes.events.buffer import (
    _append,
)
from processes.models import (
    EventType,
    ProcessEvent,
)


def process_started(*, log, actor, input: dict) -> ProcessEvent:
    """The actor started ``process`` with ``input`` as its first variables."""
    return _append(
        log=log,
        type=EventType.PROCESS_STARTED,
        actor=actor,
        data={
            "definition": log.process.definition_key,
            "version": log.process.definition.version,
            "business_key": log.process.business_key,
            "input": input,
        },
    )


def process_completed(*, log, actor) -> ProcessEvent:
    """The last stage ended; the actor is whoever completed the last task."""
    return _append(log=log, type=EventType.PROCESS_COMPLETED, actor=actor)


def process_failed(*, log, actor, task, error: str) -> ProcessEvent:
    """An incident opened on ``process`` because ``task`` failed for good."""
    return _append(
        log=log,
        type=EventType.PROCESS_FAILED,
        actor=actor,
        task=task,
        data={"error": error},
    )


def process_resumed(*, log, actor) -> ProcessEvent:
    """No failed task remains: the incident is resolved."""
    return _append(log=log, type=EventType.PROCESS_RESUMED, actor=actor)


def process_cancelled(*, log, actor, reason: str) -> ProcessEvent:
    return _append(log=log, type=EventType.PROCESS_CANCELLED, actor=actor, data={"reason": reason})


def process_compensated(*, log, actor, reason: str) -> ProcessEvent:
    """A task failed for good under ``on_failure: compensate`` and what it had done is undone:
    ``reason`` names the failure."""
    return _append(
        log=log, type=EventType.PROCESS_COMPENSATED, actor=actor, data={"reason": reason}
    )


def process_reopened(*, log, actor, reason: str, stage: str) -> ProcessEvent:
    """A replay brought ``process`` back to ``stage``."""
    return _append(
        log=log,
        type=EventType.PROCESS_REOPENED,
        actor=actor,
        data={"reason": reason, "stage": stage},
    )


def process_sent_back(*, log, actor, task, goto: str, rework: dict) -> ProcessEvent:
    """The actor decided ``task`` with a rework outcome: the process goes back to stage ``goto``
    for the next round; ``rework`` is the ``rework`` variable set for it (round, comment, ...)."""
    return _append(
        log=log,
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
    *, log, actor, from_version: int, to_version: int, mapping: dict, dropped, added
) -> ProcessEvent:
    """The actor moved ``process`` to another version of its definition: ``mapping`` says which
    task became which, ``dropped`` and ``added`` the tasks that went and came."""
    return _append(
        log=log,
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


def subprocess_started(*, log, actor, task, definition: str, children: list) -> ProcessEvent:
    """The PROCESS ``task`` of ``process`` started ``children`` ({id, business_key}) of
    ``definition``; the actor is whoever scheduled the task."""
    return _append(
        log=log,
        type=EventType.SUBPROCESS_STARTED,
        actor=actor,
        task=task,
        data={"definition": definition, "children": children},
    )


def subprocess_finished(*, log, actor, task, child, state: str) -> ProcessEvent:
    """A child of ``task`` ended in ``state`` (completed or cancelled); the actor is the child."""
    return _append(
        log=log,
        type=EventType.SUBPROCESS_FINISHED,
        actor=actor,
        task=task,
        data={"child": str(child.pk), "business_key": child.business_key, "state": state},
    )


def stage_started(*, log, actor, stage: str) -> ProcessEvent:
    return _append(log=log, type=EventType.STAGE_STARTED, actor=actor, data={"stage": stage})


def stage_completed(*, log, actor, stage: str) -> ProcessEvent:
    return _append(log=log, type=EventType.STAGE_COMPLETED, actor=actor, data={"stage": stage})


def variables_changed(*, log, actor, changes: dict, reason: str) -> ProcessEvent:
    """A person with the ``correct_variables`` grant corrected variables; ``changes`` maps each
    variable path to ``{"before": ..., "after": ...}`` (a missing side means absent)."""
    return _append(
        log=log,
        type=EventType.VARIABLES_CHANGED,
        actor=actor,
        data={"changes": changes, "reason": reason},
    )
