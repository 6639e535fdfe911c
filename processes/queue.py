"""The one way Flowdesk queues background work: a django-q2 task named by its dotted path.

The engine queues steps and compensations here after commit, adapters queue their notices here,
and the periodic schedules are declared here. A broker that can't be reached after a commit
never turns the committed change into an error: the enqueue is logged and the engine's timer
sweep enqueues the scheduled steps again (a lost enqueue is a delay, not a loss).
"""

from __future__ import annotations

import logging
import os

from django.conf import settings
from django_q.brokers import Broker, get_broker
from django_q.conf import Conf
from django_q.models import Schedule
from django_q.tasks import async_task

logger = logging.getLogger(__name__)

RUN_STEP = "processes.worker.run_step"
RUN_COMPENSATION = "processes.worker.run_compensation"
ENQUEUE_STEPS = "processes.queue.enqueue_steps"  # a batch's steps, queued by a worker

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
    try:
        async_task(func, *args, broker=broker(), **options)
    except Exception:
        logger.exception("could not queue %s%r: left to the timer sweep", func, args)
        return False
    return True


def enqueue_steps(steps: list[tuple[int, int]]) -> None:
    """Queue service steps ``(task_id, timeout)``."""
    for task_id, timeout in steps:
        enqueue_step(task_id, timeout=timeout)


def enqueue_step(task_id: int, *, timeout: int) -> bool:
    """Queue one step; the q2 timeout is the step's timeout plus the lease margin."""
    return enqueue(
        RUN_STEP,
        task_id,
        timeout=timeout + settings.FLOWDESK_LEASE_MARGIN,
        task_name=f"step-{task_id}",
        group="flowdesk-steps",
    )


def enqueue_compensation(process_id, task_ids: list[int]) -> None:
    enqueue(RUN_COMPENSATION, str(process_id), list(task_ids))


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
