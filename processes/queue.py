"""The one way Flowdesk queues background work (a django-q2 task named by its dotted path), and
the one way anything runs after a commit (``on_commit``).

The engine queues steps, compensations and the start and cancellation of child processes here
after commit, announces through ``hooks.after_commit`` (which comes here too), adapters queue
their notices here, and the periodic schedules are declared here. A broker that can't be reached
after a commit never turns the committed change into an error: the enqueue is logged and the
engine's timer sweep enqueues the work again (a lost enqueue is a delay, not a loss).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django_q.brokers import Broker, get_broker
from django_q.brokers.redis_broker import Redis
from django_q.conf import Conf
from django_q.models import Schedule
from django_q.signing import SignedPackage
from django_q.tasks import async_task

from processes import context

logger = logging.getLogger(__name__)

RUN_STEP = "processes.worker.run_steps"  # run_step with eager dispatch
RUN_COMPENSATION = "processes.worker.run_compensation"
ENQUEUE_STEPS = "processes.queue.enqueue_steps"  # a batch's steps, queued by a worker
START_CHILDREN = "processes.worker.start_children"  # the children of PROCESS tasks
CANCEL_CHILDREN = "processes.worker.cancel_children"  # the children of a cancelled process

_brokers: dict[tuple, Broker] = {}


def broker() -> Broker:
    """One django-q2 broker per process and queue.

    ``async_task`` builds a new broker per call unless given one; with Redis that is a new
    connection pool and TCP connection (plus a health check) per enqueued step, about as costly
    as the step's whole engine transaction. Keyed by pid so a forked worker opens its own.
    """
    key = (os.getpid(), Conf.CLUSTER_NAME, Conf.ORM, str(Conf.REDIS))
    found = _brokers.get(key)
    if found is None:
        _brokers.clear()
        found = _brokers[key] = get_broker()
    return found


def enqueue(func: str, *args, **options) -> bool:
    """Queue ``func(*args)`` (a dotted path) without saving its result; False when the broker
    refused (logged): callers after a commit carry on, the sweep covers what was lost."""
    options.setdefault("save", False)
    carried = context.current()  # the request id (and causing event) go with the task
    if carried:
        options.setdefault(context.TASK_KWARG, carried)
    try:
        async_task(func, *args, broker=broker(), **options)
    except Exception:
        logger.exception("could not queue %s%r: left to the timer sweep", func, args)
        return False
    return True


def on_commit(func, *args, **kwargs) -> None:
    """Call ``func(*args, **kwargs)`` once the current transaction commits (at once outside
    one), never raising into the caller: the one after-commit path of the engine.

    Whatever goes wrong after the commit (a broker down, a bug in the queueing code) is logged:
    the change is committed and the timer sweep enqueues what is due again, so the request
    that made the change answers with what was committed, never a 500.
    """

    def run():
        try:
            func(*args, **kwargs)
        except Exception:
            logger.exception("after commit, %s%r failed: left to the timer sweep", func, args)

    transaction.on_commit(run)


def enqueue_steps(steps: list[tuple], *, correlation: str = "") -> None:
    """Queue service steps ``(task_id, timeout, cause, process_id)``: ``cause`` is the event
    that scheduled the step (its ``task_scheduled``), recorded as the cause of what the step's
    run appends, and ``correlation`` the id of the transaction that scheduled them.

    Batch dispatch: the steps of one process go up to ``FLOWDESK_STEP_BATCH`` per message (one
    pop, one lease transaction, one report transaction). Steps of different processes never
    share a message: a worker leases the steps of one process at a time. A step without its
    process (a message queued by an earlier release) goes alone."""
    size = settings.FLOWDESK_STEP_BATCH
    for group in _by_process(steps):
        for at in range(0, len(group), size):
            chunk = group[at : at + size]
            with context.bound(correlation=correlation or None, cause=chunk[0][2]):
                if len(chunk) == 1:
                    enqueue_step(chunk[0][0], timeout=chunk[0][1])
                else:
                    enqueue_batch(chunk)


def _by_process(steps: list[tuple]) -> list[list[tuple[int, int, int | None]]]:
    """``steps`` as ``(task_id, timeout, cause)`` grouped by process, in order of first step."""
    groups: dict = {}
    for index, step in enumerate(steps):
        process = step[3] if len(step) > 3 and step[3] is not None else ("alone", index)
        groups.setdefault(process, []).append(tuple(step[:3]))
    return list(groups.values())


def _step_q_timeout(timeout: int) -> int:
    """A step's q2 timeout: its own timeout plus the lease margin, plus the seconds the worker
    may go on with steps its completions leased to it (eager dispatch)."""
    return timeout + settings.FLOWDESK_LEASE_MARGIN + settings.FLOWDESK_EAGER_SECONDS


def enqueue_step(task_id: int, *, timeout: int) -> bool:
    """Queue one step (``run_steps(task_id)``; its cause rides with the bound context)."""
    q_timeout = _step_q_timeout(timeout)
    return enqueue(
        RUN_STEP,
        task_id,
        q_timeout=q_timeout,  # the worker's own limit (q2 pops ``timeout`` before the call)
        timeout=q_timeout,
        task_name=f"step-{task_id}",
        group="flowdesk-steps",
    )


def enqueue_batch(steps: list[tuple[int, int, int | None]]) -> bool:
    """Queue steps of one process (never more: ``engine.tasks_start`` leases one process's) as
    one message: ``run_steps(id, id, ..., causes=[...])``; they
    run side by side, so the q2 timeout is the longest step's."""
    ids = [task_id for task_id, _, _ in steps]
    q_timeout = _step_q_timeout(max(timeout for _, timeout, _ in steps))
    return enqueue(
        RUN_STEP,
        *ids,
        causes=[cause for _, _, cause in steps],
        q_timeout=q_timeout,
        timeout=q_timeout,
        task_name=f"steps-{ids[0]}-{ids[-1]}",
        group="flowdesk-steps",
    )


@dataclass(frozen=True)
class QueuedSteps:
    """A step message a worker took off the queue itself (``take_queued_steps``)."""

    task_ids: list[int]
    causes: list
    correlation: str | None


def take_queued_steps(*, room: int, q_timeout: int | None) -> list[QueuedSteps]:
    """More step messages waiting in the Redis queue, for a worker's group commit: up to
    ``FLOWDESK_STEP_GROUP - 1`` messages, at most ``room`` steps in all, none whose django-q2
    timeout is longer than ``q_timeout`` (the worker's own message's: q2 stops the worker then).

    They are taken with one LPOP; any other message taken goes back to the head of the list in
    its order. A worker killed meanwhile loses them as it would lose its own message (its
    progress note names their steps: its supervisor queues them again). The ORM broker's rows
    are acknowledged one by one: nothing is taken there.
    """
    count = settings.FLOWDESK_STEP_GROUP - 1
    found = broker()
    if count < 1 or room < 1 or not q_timeout or not isinstance(found, Redis):
        return []
    taken, back = [], []
    for raw in found.connection.lpop(found.list_key, count) or ():
        steps = _queued_steps(raw, room, q_timeout)
        if steps is None:
            back.append(raw)
        else:
            taken.append(steps)
            room -= len(steps.task_ids)
    if back:
        found.connection.lpush(found.list_key, *reversed(back))
    return taken


def _queued_steps(raw, room: int, q_timeout: int) -> QueuedSteps | None:
    """``raw`` (a signed message) as steps to take, or None to put it back."""
    try:
        task = SignedPackage.loads(raw)
    except Exception:  # not ours to judge: the pusher reports it
        return None
    ids, kwargs = task.get("args") or (), task.get("kwargs") or {}
    if (
        task.get("func") != RUN_STEP
        or not 0 < len(ids) <= room
        or not all(isinstance(i, int) for i in ids)
        or not isinstance(task.get("timeout"), int)
        or task["timeout"] > q_timeout
    ):
        return None
    carried = kwargs.get(context.TASK_KWARG) or {}
    causes = kwargs.get("causes") or [carried.get("caused_by")] * len(ids)
    return QueuedSteps(list(ids), list(causes), carried.get("correlation_id") or None)


def enqueue_compensations(compensations: list[tuple[int, int]]) -> None:
    """Queue compensations ``(task_id, timeout)`` (one at a time per process: the engine's)."""
    for task_id, timeout in compensations:
        enqueue_compensation(task_id, timeout=timeout)


def enqueue_compensation(task_id: int, *, timeout: int) -> bool:
    return enqueue(
        RUN_COMPENSATION,
        task_id,
        timeout=timeout + settings.FLOWDESK_LEASE_MARGIN,
        task_name=f"compensation-{task_id}",
        group="flowdesk-steps",
    )


def enqueue_children(task_ids: list[int]) -> bool:
    """Queue the start of the children of PROCESS tasks (``engine.children_start``): the
    request that scheduled them answers without waiting for them."""
    return enqueue(
        START_CHILDREN,
        *task_ids,
        task_name=f"children-{task_ids[0]}",
        group="flowdesk-children",
    )


def enqueue_cancel_children(process_id) -> bool:
    """Queue the cancellation of a cancelled process's children (``engine.children_cancel``)."""
    return enqueue(
        CANCEL_CHILDREN,
        str(process_id),
        task_name=f"cancel-children-{process_id}",
        group="flowdesk-children",
    )


def ensure_periodic(name: str, func: str, *, minutes: int, fix: bool = True) -> Schedule:
    """The one django-q2 schedule called ``name`` running ``func`` every ``minutes``.

    ``fix`` puts an edited schedule back as declared (set-up); without it an existing one is left
    as it is and nothing is written (cheap enough to call on a hot path).
    """
    values = {
        "func": func,
        "schedule_type": Schedule.MINUTES,
        "minutes": minutes,
        "repeats": -1,
    }
    if fix:
        schedule, _ = Schedule.objects.update_or_create(name=name, defaults=values)
    else:
        schedule, _ = Schedule.objects.get_or_create(name=name, defaults=values)
    return schedule
