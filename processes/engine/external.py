"""External tasks that lock (Camunda's fetch-and-lock): a worker takes tasks of a queue for
``lock_seconds``; no other poller gets them until the lock expires, and only the lock's owner
may complete or fail them meanwhile.

A lock is not a state change of the process: the task stays ``scheduled`` and only its two lock
columns change, so ``tasks_lock`` locks the task rows alone (``FOR UPDATE SKIP LOCKED``: two
pollers never wait for each other nor get the same task) and takes no process row. An expired
lock needs no sweep: every check compares ``lock_expires_at`` with now.
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from processes import authority
from processes.engine._run import _require_grant
from processes.errors import Conflict, InvalidInput, NotFound
from processes.events import Actor
from processes.models import TaskInstance, TaskState, TaskType

MAX_LOCK_SECONDS = 24 * 3600
MAX_TASKS = 100


def _external(task_queue: str):
    return TaskInstance.objects.filter(
        task_queue=task_queue, state=TaskState.SCHEDULED, type=TaskType.SERVICE, handler=""
    )


def _checked(worker_id: str, lock_seconds: int) -> None:
    if not worker_id or not worker_id.strip():
        raise InvalidInput("worker_id is required", fields={"worker_id": ["required"]})
    if not 1 <= lock_seconds <= MAX_LOCK_SECONDS:
        raise InvalidInput(
            f"lock_seconds must be 1 to {MAX_LOCK_SECONDS}",
            fields={"lock_seconds": [f"must be 1 to {MAX_LOCK_SECONDS}"]},
        )


@transaction.atomic
def tasks_lock(
    *, task_queue: str, worker_id: str, max_tasks: int, lock_seconds: int, actor: Actor
) -> list[TaskInstance]:
    """Lock up to ``max_tasks`` free tasks of ``task_queue`` (oldest first, on definitions the
    actor operates) for ``worker_id``: free means never locked or its lock expired."""
    _checked(worker_id, lock_seconds)
    if not 1 <= max_tasks <= MAX_TASKS:
        raise InvalidInput(
            f"max_tasks must be 1 to {MAX_TASKS}",
            fields={"max_tasks": [f"must be 1 to {MAX_TASKS}"]},
        )
    now = timezone.now()
    free = _external(task_queue).filter(
        Q(lock_expires_at__isnull=True) | Q(lock_expires_at__lte=now)
    )
    keys = authority.granted_keys(actor.user, authority.OPERATE) if actor.user else None
    if keys is not None:
        free = free.filter(definition_key__in=keys)
    # Rows another poller is locking right now are skipped, not waited for.
    ids = list(
        free.order_by("scheduled_at", "id")
        .select_for_update(skip_locked=True, of=("self",))
        .values_list("id", flat=True)[:max_tasks]
    )
    if not ids:
        return []
    expires = now + dt.timedelta(seconds=lock_seconds)
    TaskInstance.objects.filter(pk__in=ids).update(locked_by=worker_id, lock_expires_at=expires)
    return list(
        TaskInstance.objects.filter(pk__in=ids)
        .select_related("process", "process__definition")
        .order_by("scheduled_at", "id")
    )


def _locked_task(task_queue: str, task_id: int, worker_id: str, actor: Actor) -> TaskInstance:
    task = (
        TaskInstance.objects.select_for_update(of=("self",))
        .filter(pk=task_id, task_queue=task_queue, type=TaskType.SERVICE, handler="")
        .first()
    )
    if task is None:
        raise NotFound(f"queue {task_queue!r} has no external task {task_id}")
    _require_grant(actor, authority.OPERATE, task.definition_key, "lock external tasks")
    if task.state != TaskState.SCHEDULED:
        raise Conflict(f"task {task.name!r} is {task.state}: nothing to lock")
    if not held_by(task, worker_id, timezone.now()):
        raise Conflict(f"task {task.name!r} is not locked by {worker_id!r}")
    return task


@transaction.atomic
def task_lock_extend(
    *, task_queue: str, task_id: int, worker_id: str, lock_seconds: int, actor: Actor
) -> TaskInstance:
    """Keep the lock ``lock_seconds`` from now; only while ``worker_id`` still holds it."""
    _checked(worker_id, lock_seconds)
    task = _locked_task(task_queue, task_id, worker_id, actor)
    task.lock_expires_at = timezone.now() + dt.timedelta(seconds=lock_seconds)
    task.save(update_fields=["lock_expires_at"])
    return task


@transaction.atomic
def task_unlock(*, task_queue: str, task_id: int, worker_id: str, actor: Actor) -> TaskInstance:
    """Give the task back to its queue before the lock expires (the worker won't do it)."""
    _checked(worker_id, 1)
    task = _locked_task(task_queue, task_id, worker_id, actor)
    task.locked_by, task.lock_expires_at = "", None
    task.save(update_fields=["locked_by", "lock_expires_at"])
    return task


def held_by(task: TaskInstance, worker_id: str | None, now) -> bool:
    """Whether ``worker_id`` holds a live lock on ``task``."""
    return bool(
        worker_id
        and task.locked_by == worker_id
        and task.lock_expires_at is not None
        and task.lock_expires_at > now
    )


def check_lock(task: TaskInstance, worker_id: str | None) -> None:
    """Within a completion or a failure of an external task: refuse it (Conflict, recorded by the
    caller) while another worker holds a live lock; the lock ends with the answer."""
    now = timezone.now()
    if task.lock_expires_at is None or task.lock_expires_at <= now:
        return
    if worker_id != task.locked_by:
        who = f"worker {worker_id!r}" if worker_id else "a sender without worker_id"
        raise Conflict(
            f"task {task.name!r} is locked by {task.locked_by!r} until "
            f"{task.lock_expires_at:%Y-%m-%d %H:%M:%S} UTC: {who} may not answer it"
        )
