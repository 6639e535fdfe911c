"""The seed workflow manager's event protocol (StartWorkflow, TaskCompleted, TaskFailed,
TaskPending): the domain rules live here, the API only translates the outcome to HTTP."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction

from processes import authority, events
from processes.engine._run import (
    HUMAN_TASK_REFUSAL,
    TaskResult,
    _lock_for_task,
    _require_grant,
    _spec_for,
)
from processes.engine.human import task_decide
from processes.engine.operate import task_retry
from processes.engine.start import checked_business_key, process_start
from processes.engine.steps import task_complete, task_fail
from processes.errors import Conflict, InvalidInput, NotFound
from processes.events import Actor
from processes.models import (
    ArchivedBusinessKey,
    ProcessInstance,
    TaskInstance,
    TaskType,
)
from processes.selectors import find_definition

logger = logging.getLogger(__name__)


SEED_EVENTS = ("StartWorkflow", "TaskCompleted", "TaskFailed", "TaskPending")


@dataclass(frozen=True)
class EventOutcome:
    process: ProcessInstance | None  # None: ``archived`` holds the key ("ever")
    task: TaskInstance | None
    created: bool = False
    duplicate: bool = False
    archived: ArchivedBusinessKey | None = None


def handle_seed_event(
    *,
    event_name: str,
    business_ref_no: str,
    actor: Actor,
    component_name: str | None = None,
    definition_key: str | None = None,
    stage_name: str | None = None,
    task_name: str | None = None,
    task_type: str | None = None,
    data: dict | None = None,
    error: str | None = None,
    occurred_at=None,
    worker_id: str | None = None,
) -> EventOutcome:
    """Apply one of the seed's events (StartWorkflow, TaskCompleted, TaskFailed, TaskPending).

    A task's ``data`` becomes its result, under its own name in the variables. Human tasks are
    refused unless their spec says ``external_decision`` (then ``data`` carries the decision,
    checked like the inbox's). An event that doesn't fit the task's state raises ``Conflict``
    and is recorded in the history as a rejected ``task_duplicate``. ``occurred_at``: when
    it happened, as the sender said (kept beside the time it is recorded). ``worker_id``: the
    external worker answering (a task it locked: ``engine.external``).
    """
    if event_name not in SEED_EVENTS:
        raise InvalidInput(
            f"unknown event_name {event_name!r}",
            fields={"event_name": [f"must be one of: {', '.join(SEED_EVENTS)}"]},
        )
    if data is not None and not isinstance(data, dict):
        raise InvalidInput("data must be a JSON object", fields={"data": ["must be an object"]})
    business_ref_no = checked_business_key(business_ref_no, "business_ref_no")
    if event_name == "StartWorkflow":
        try:
            started = process_start(
                definition_key=definition_key,
                component_name=component_name,
                business_key=business_ref_no,
                input=data or {},
                actor=actor,
                occurred_at=occurred_at,
            )
        except InvalidInput as exc:  # the event's words: its input is ``data``
            raise InvalidInput(exc.message, fields=_renamed(exc.fields, "input", "data")) from None
        return EventOutcome(
            started.process, None, created=started.created, archived=started.archived
        )
    definition = find_definition(key=definition_key, component_name=component_name)
    _require_grant(actor, authority.OPERATE, definition.key, "send task events")
    process = (
        ProcessInstance.objects.filter(definition_key=definition.key, business_key=business_ref_no)
        .order_by("-created_at")
        .first()
    )
    if process is None:
        raise NotFound(f"no process {business_ref_no!r} of {definition.key!r}")
    if not task_name:
        raise InvalidInput("task_name is required", fields={"task_name": ["required"]})
    task = TaskInstance.objects.filter(process=process, name=task_name).first()
    if task is None:
        raise NotFound(f"process {business_ref_no!r} has no task {task_name!r}")
    if stage_name and stage_name != task.stage:
        raise InvalidInput(
            f"task {task_name!r} is in stage {task.stage!r}, not {stage_name!r}",
            fields={"stage_name": [f"task {task_name!r} is in stage {task.stage!r}"]},
        )
    if task_type and task_type != task.type:
        raise InvalidInput(
            f"task {task.name!r} is {task.type}, not {task_type}",
            fields={"task_type": [f"task {task.name!r} is {task.type}"]},
        )
    human = task.type == TaskType.HUMAN
    if human and not _spec_for(process.definition).task(task.name).external_decision:
        raise Conflict(HUMAN_TASK_REFUSAL)  # refused before anything is recorded
    try:
        if event_name == "TaskCompleted" and human:
            fields = dict(data or {})
            result = TaskResult(
                task_decide(
                    task_id=task.pk,
                    actor=actor,
                    decision=fields.pop("decision", None),
                    comment=fields.pop("comment", ""),
                    data=fields,
                    via_event=True,
                    occurred_at=occurred_at,
                )
            )
        elif event_name == "TaskCompleted":
            result = task_complete(
                task_id=task.pk, actor=actor, result=data or {}, field="data",
                occurred_at=occurred_at, worker_id=worker_id,
            )  # fmt: skip
        elif event_name == "TaskFailed":
            result = task_fail(
                task_id=task.pk,
                actor=actor,
                error=error or "reported failed by an external task",
                retryable=False,
                occurred_at=occurred_at,
                worker_id=worker_id,
            )
        else:
            result = task_retry(task_id=task.pk, actor=actor, reason="TaskPending")
    except Conflict as exc:
        if not (human and event_name == "TaskCompleted"):  # a late decision is recorded already
            task_event_rejected(
                task_id=task.pk, actor=actor, event=event_name, reason=exc.message, data=data
            )
        raise
    task, duplicate = result.task, result.duplicate
    process.refresh_from_db()
    return EventOutcome(process, task, duplicate=duplicate)


def _renamed(fields: dict, old: str, new: str) -> dict:
    return {
        new + name[len(old) :] if name == old or name.startswith(old + ".") else name: messages
        for name, messages in fields.items()
    }


@transaction.atomic
def task_event_rejected(*, task_id, actor: Actor, event: str, reason: str, data=None) -> None:
    """Record an event that did not fit the task's state (out of order); nothing else changes.

    The caller answers 409; the history keeps the attempt as a ``task_duplicate`` event.
    """
    run, task = _lock_for_task(task_id)
    events.task_duplicate(
        log=run.log,
        actor=actor,
        task=task,
        event=event,
        data={"rejected": reason, "data": data},
    )
    run.save()
