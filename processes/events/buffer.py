"""Who acts (``Actor``), the event log of one unit of work, and writing it in one INSERT."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from processes import context, hooks
from processes.db import internals
from processes.events import chain
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
        """A person acting through a page (the inbox, the admin); see ``api`` for a system."""
        return cls(ActorType.USER, user, user.get_username())

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


@dataclass
class EventLog:
    """The events one unit of work (the engine's ``_Run``) appends to ``process``, held until
    they are written in one INSERT at the end of its transaction (``flush``, ``take_pending``).
    """

    process: ProcessInstance
    pending: list[ProcessEvent] = field(default_factory=list)
    correlation: str = ""  # the transaction's own id, when no request or task bound one
    # When the incoming event happened, as its sender said: stamped on the next event appended
    # only (the event that records it; what follows from it happens when it is recorded).
    occurred_at: Any = None


def _append(
    *,
    log: EventLog,
    type: str,
    actor: Actor,
    task: TaskInstance | None = None,
    data: dict | None = None,
) -> ProcessEvent:
    process = log.process
    process.last_seq += 1
    correlation = context.correlation_id.get()
    if not correlation:  # no request or task bound one: the transaction gets its own
        log.correlation = correlation = log.correlation or context.new_id()
    occurred_at, log.occurred_at = log.occurred_at, None
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
        occurred_at=occurred_at,
        data=data or {},
        correlation_id=correlation,
        caused_by=context.caused_by.get(),
    )
    event.hash = process.last_hash = chain.link(process.last_hash, event)
    log.pending.append(event)
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


def take_pending(log: EventLog) -> list[ProcessEvent]:
    """The log's events not written yet, for a caller that writes them itself
    (``db.internals.write``, a batch's COPY)."""
    pending, log.pending = log.pending, []
    return pending


def flush(log: EventLog) -> list[ProcessEvent]:
    """Write the log's pending events in one INSERT (see ``written``)."""
    pending = take_pending(log)
    if pending:
        internals.insert(pending)
    return written(log, pending)


def written(log: EventLog, events: list[ProcessEvent]) -> list[ProcessEvent]:
    """``events`` of ``log`` were just inserted (by ``flush`` or ``db.internals.write``): let
    ``events_written`` listeners (the events-out outbox) write their rows in the same
    transaction. The next events of this log get a correlation id of their own."""
    log.correlation = ""
    if events:
        hooks.within("events_written", process=log.process, events=events)
    return events
