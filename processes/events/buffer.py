"""Who acts (``Actor``), the per-process buffer of new events, and writing it in one INSERT."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from processes import context, hooks
from processes.db import core as raw
from processes.models import (
    ActorType,
    DefinitionEvent,
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
