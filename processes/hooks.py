"""What the engine announces, and who listens: a plain registry, no Django signals.

The engine never imports an adapter, nor does the rest of ``processes`` import ``integrations``
(the worker supervisor, ``manage.py setup_flowdesk``). When something happened that the outside
world may care about, the engine calls ``after_commit(name, **payload)``; once the transaction
commits, every function registered for ``name`` is called, through the one after-commit path
(``queue.on_commit``). Adapters register theirs in their ``AppConfig.ready``. A listener should
be quick — queue a django-q2 task for slow work (an SMS, a mail) — and its failure is logged,
never raised into the engine's caller.

Hooks and their payloads (keyword arguments):

- ``incident_opened``: ``process_id``, ``task_id``, ``error`` — a task (or its compensation)
  failed for good, or waited past its deadline; with ``kind`` too (``deadline:<time>``) for an
  incident that is not the task's failure: the process deadline passed (the task is the one it
  waits for);
- ``task_escalated``: ``task_id``, ``from_role``, ``to_role`` (None for a reminder) — an overdue
  human task moved to its escalation role, or its role was reminded;
- ``task_opened``: ``task_id`` — a human task was scheduled (waits for its assignee or role);
- ``claims_expired`` (no payload; emitted by the worker supervisor, not after a commit) — a
  worker died in the middle of work other than a step (its progress note named no task: an
  outbox's send, an event delivery or an SMS), and that work's claim has now expired: a
  listener queues again what such a worker had claimed;
- ``cluster_stalled``: ``supervisor``, ``cluster``, ``since``, ``silent_for``, ``restarts``
  (emitted by the worker supervisor, no transaction) — its cluster returned no heartbeat for
  ``silent_for`` seconds since ``since`` and is being restarted: a listener alerts (the SMS);
- ``cluster_resumed``: ``supervisor``, ``cluster``, ``since``, ``stalled_for``, ``restarts``
  (likewise) — the cluster stalled since ``since`` answers again;
- ``setup`` (``manage.py setup_flowdesk``, called with ``within``): ``say`` — a listener
  creates what it needs once per installation (its periodic schedules) and reports each with
  ``say(line)``; an error stops the set-up.

One hook runs *inside* the engine's transaction instead (``within``), for listeners whose rows
must commit or roll back with the events (an outbox):

- ``events_written``: ``process``, ``events`` — the engine appended ``events`` (``ProcessEvent``
  rows with their ids) to ``process``; a listener that raises rolls the whole event back;
- ``processes_purged``: ``process_ids`` — retention deleted these archived processes (with their
  tasks and events); a listener drops its own rows about them in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from processes import queue

logger = logging.getLogger(__name__)

HOOKS = (
    "incident_opened",
    "task_escalated",
    "task_opened",
    "claims_expired",
    "cluster_stalled",
    "cluster_resumed",
    "setup",
    "events_written",
    "processes_purged",
)
_listeners: dict[str, list[Callable[..., None]]] = {name: [] for name in HOOKS}


def register(name: str, listener: Callable[..., None]) -> None:
    """Call ``listener(**payload)`` after each commit that announced ``name`` (once per function)."""
    if name not in _listeners:
        raise ValueError(f"unknown hook {name!r}: one of {', '.join(HOOKS)}")
    if listener not in _listeners[name]:
        _listeners[name].append(listener)


def listeners(name: str) -> list[Callable[..., None]]:
    return list(_listeners[name])


def emit(name: str, **payload) -> None:
    """Call every listener of ``name`` now; a failing one is logged and the others still run."""
    for listener in _listeners[name]:
        try:
            listener(**payload)
        except Exception:
            logger.exception(
                "listener %s of %s failed", getattr(listener, "__name__", listener), name
            )


def after_commit(name: str, **payload) -> None:
    """Announce ``name`` once the current transaction commits (at once outside a transaction)."""
    if name not in _listeners:
        raise ValueError(f"unknown hook {name!r}")
    queue.on_commit(emit, name, **payload)


def within(name: str, **payload) -> None:
    """Call every listener of ``name`` now, inside the caller's transaction; an error propagates
    (the caller's transaction rolls back: nothing is written without its listeners' rows)."""
    for listener in _listeners[name]:
        listener(**payload)
