"""Messages from other systems (``POST /api/messages/``): correlate one to the MESSAGE tasks
waiting for its name and correlation key, or buffer it for a task that starts waiting soon.

One transaction: the message's advisory lock (``db.engine.lock_message``: a task starting to
wait for the same name and key waits for it, and then sees it), then each reached process's
row locked in turn, its task completed with the message's ``data`` and the process advanced.
A repeat (the same ``message_id``) changes nothing and answers what the first did.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from processes import authority
from processes import spec as spec_module
from processes.db import engine as db_engine
from processes.engine._run import _advance, _lock_for_task, _require_grant, _spec_for
from processes.engine.waits import MAX_KEY, deliver
from processes.errors import InvalidInput, NotFound
from processes.events import Actor
from processes.models import (
    DefinitionStatus,
    ProcessDefinition,
    ReceivedMessage,
    TaskInstance,
    TaskState,
    TaskType,
)


@dataclass(frozen=True)
class MessageOutcome:
    """What a message did: the tasks it reached, or kept (``buffered``), or nothing new
    (``duplicate``: its ``message_id`` came before)."""

    message: ReceivedMessage
    reached: list[dict] = field(default_factory=list)
    buffered: bool = False
    duplicate: bool = False


def checked_message(*, name, correlation_key, data, occurred_at, buffer) -> tuple:
    """(name, key, data, occurred_at, buffer as a timedelta) or InvalidInput naming the field."""
    problems: dict[str, list[str]] = {}
    for path, text in (("name", name), ("correlation_key", correlation_key)):
        if not isinstance(text, str | int) or isinstance(text, bool) or not str(text).strip():
            problems[path] = ["is required: a non-empty string"]
        elif len(str(text)) > MAX_KEY:
            problems[path] = [f"must be at most {MAX_KEY} characters"]
        elif spec_module.text_problem(str(text)):
            problems[path] = [spec_module.text_problem(str(text))]
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems["data"] = ["must be an object"]
    if occurred_at is not None and not isinstance(occurred_at, dt.datetime):
        try:
            occurred_at = spec_module.moment(occurred_at)
        except ValueError as exc:
            problems["occurred_at"] = [str(exc)]
    if buffer is not None:
        buffer = spec_module.parse_iso_duration(buffer)
        if buffer is None or buffer.total_seconds() <= 0:
            problems["buffer"] = ["must be an ISO 8601 duration like 'PT1H' or seconds"]
    if problems:
        raise InvalidInput(f"bad message: {', '.join(problems)}", fields=problems)
    return str(name), str(correlation_key), data, occurred_at, buffer


def definitions_waiting_for(name: str) -> list[str]:
    """Keys of the definitions (published or retired: their instances still run) that have a
    MESSAGE task waiting for the message ``name``."""
    keys = []
    rows = ProcessDefinition.objects.exclude(status=DefinitionStatus.DRAFT).order_by("key")
    for definition in rows:
        if definition.key in keys:
            continue
        spec = _spec_for(definition)
        if any(t.message is not None and t.message.name == name for t in spec.tasks):
            keys.append(definition.key)
    return keys


@transaction.atomic
def message_correlate(
    *,
    name,
    correlation_key,
    actor: Actor,
    data: Any = None,
    occurred_at=None,
    message_id: str | None = None,
    buffer=None,
) -> MessageOutcome:
    """Deliver a message to every MESSAGE task waiting for ``name`` and ``correlation_key``:
    its ``data``, checked against each task's ``result``, lands under the task's name. Nothing
    waits: NotFound, unless ``buffer`` (a duration) keeps it for a task that starts waiting
    within that time. ``actor`` needs ``operate_process`` on every definition that waits for
    ``name``."""
    name, key, data, occurred_at, buffer = checked_message(
        name=name, correlation_key=correlation_key, data=data, occurred_at=occurred_at,
        buffer=buffer,
    )  # fmt: skip
    keys = definitions_waiting_for(name)
    if not keys:
        raise NotFound(f"no process definition waits for the message {name!r}")
    for definition_key in keys:
        _require_grant(actor, authority.OPERATE, definition_key, "send messages to processes")
    db_engine.lock_message(name, key)  # (then a repeat sent at once sees the first one)
    if message_id:
        existing = ReceivedMessage.objects.filter(message_id=message_id).first()
        if existing is not None:
            return MessageOutcome(existing, list(existing.reached), duplicate=True)
    message = ReceivedMessage(
        name=name, correlation_key=key, message_id=message_id or None, data=data,
        occurred_at=occurred_at,
    )  # fmt: skip
    waiting = TaskInstance.objects.filter(
        type=TaskType.MESSAGE, state=TaskState.SCHEDULED, message_name=name, correlation_key=key
    ).order_by("process_id", "pk")
    reached = []
    for task_id in list(waiting.values_list("pk", flat=True)):
        run, task = _lock_for_task(task_id)
        run.actor = actor
        if task.state != TaskState.SCHEDULED or task.correlation_key != key:
            continue  # (reached meanwhile, by a message that held the lock before)
        problems = deliver(run, task, message, actor=actor)
        if problems:
            raise InvalidInput(
                f"the message's data breaks the result of {task.name}",
                fields={f"data.{path}": messages for path, messages in problems.items()},
            )
        _advance(run)
        run.save()
        reached.append(
            {"process_id": str(run.process.pk), "task_id": task.pk, "task_name": task.name}
        )
    now = timezone.now()
    if not reached and buffer is None:
        raise NotFound(f"nothing waits for the message {name!r} with correlation key {key!r}")
    message.reached = reached
    message.delivered_at = now if reached else None
    message.buffer_until = None if reached else now + buffer
    try:
        with transaction.atomic():
            message.save()
    except IntegrityError:  # the same message_id, sent twice at once: the other one counts
        raise _Repeat(message_id) from None
    return MessageOutcome(message, reached, buffered=not reached)


class _Repeat(Exception):
    def __init__(self, message_id: str):
        self.message_id = message_id


def message_receive(**kwargs) -> MessageOutcome:
    """``message_correlate``, a concurrent repeat of the same ``message_id`` answered as the
    duplicate it is (its transaction rolled back: nothing it did stays)."""
    try:
        return message_correlate(**kwargs)
    except _Repeat as repeat:
        existing = ReceivedMessage.objects.get(message_id=repeat.message_id)
        return MessageOutcome(existing, list(existing.reached), duplicate=True)
