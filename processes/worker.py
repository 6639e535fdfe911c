"""django-q2 entry points. Thin and idempotent: they take ids and call public engine functions.

A step is delivered at least once (ORM broker) or at most once (Redis broker); either way the
engine's own timer sweep re-enqueues steps that nobody picked up or whose lease expired. What a
worker does itself: call the handlers (``steps.call``; a batch's side by side in threads) and
tell its supervisor what it runs (``progress``). The timers (``engine.timers_sweep``,
``engine.timer_loop``) and the requeue after a restart (``engine.requeue_scheduled``) are the
engine's.
"""

from __future__ import annotations

import contextvars
import functools
import os
import socket
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from django.conf import settings
from django.db import connections
from django.utils import timezone
from django_q.models import Schedule

from processes import context, engine, queue, steps
from processes.events import Actor
from processes.progress import PROGRESS_DIR_ENV, progress  # noqa: F401  (the supervisor's note)

SWEEP_SCHEDULE_NAME = "flowdesk.sweep_timers"


def _worker_actor() -> Actor:
    return Actor.worker(f"worker {socket.gethostname()}:{os.getpid()}")


def run_step(
    task_id: int, *more_ids: int, eager: bool = False, causes=None, correlations=None
) -> str:
    """Run service steps: take their leases, call the handlers, report the results to the
    engine. One id is one step; a batch's message names several of one process (batch
    dispatch), and group commit adds those of the messages waiting behind it (other processes,
    ``correlations`` aligned with the ids): leased in one transaction, run side by side, each
    in a thread.

    ``eager`` (the queue's entry point, ``run_steps``): when completions make service steps of
    the same process ready, the engine leases them to this worker in the completions' own
    transaction and they run next, without a queue round trip.
    """
    task_ids = [task_id, *more_ids]
    # Told before the lease: a worker killed between here and the lease's commit would lose the
    # steps (Redis delivers once); its supervisor reads the note and enqueues them again.
    progress.busy_until(time.time() + settings.FLOWDESK_LEASE_MARGIN, *task_ids)
    try:
        actor = _worker_actor()
        leases = engine.tasks_start(
            task_ids=task_ids, actor=actor, causes=causes, correlations=correlations
        )
        if not leases:
            return "skipped"
        # django-q2 stops this queue task after the longest step's timeout + margin + the eager
        # budget (queue.enqueue_steps): a step is chained only if its lease ends before that
        # (a second of slack for the time q2 spent before calling us).
        deadline = time.monotonic() + max(lease.timeout for lease in leases)
        deadline += settings.FLOWDESK_LEASE_MARGIN + settings.FLOWDESK_EAGER_SECONDS - 1
        return _Steps(actor, deadline if eager else None).run(leases)
    finally:
        progress.idle()


def run_steps(task_id: int, *more_ids: int, causes=None, q_timeout: int | None = None) -> str:
    """The queue's entry point for steps: ``run_step`` with eager dispatch (unless
    ``FLOWDESK_EAGER_STEPS=0``), and group commit: the step messages waiting in the queue behind
    this one (``queue.take_queued_steps``, ``FLOWDESK_STEP_GROUP``) are leased, run and
    reported with it, several processes in each transaction."""
    task_ids = [task_id, *more_ids]
    room = settings.FLOWDESK_STEP_BATCH - len(task_ids)
    taken = queue.take_queued_steps(room=room, q_timeout=q_timeout)
    correlations = None
    if taken:
        causes = list(causes or [context.caused_by.get()] * len(task_ids))
        correlations = [None] * len(task_ids)
        for more in taken:
            task_ids += more.task_ids
            causes += more.causes
            correlations += [more.correlation] * len(more.task_ids)
    return run_step(
        *task_ids,
        eager=settings.FLOWDESK_EAGER_STEPS,
        causes=causes,
        correlations=correlations,
    )


# Once a handler returns, the others of its batch get this long to finish too, so that their
# outcomes share one report transaction (a step that takes longer is reported on its own).
GATHER_SECONDS = 0.005

_pools: dict[int, ThreadPoolExecutor] = {}


def _pool() -> ThreadPoolExecutor:
    """This worker process's handler threads (made after the fork: keyed by pid)."""
    found = _pools.get(os.getpid())
    if found is None:
        _pools.clear()
        found = _pools[os.getpid()] = ThreadPoolExecutor(
            max_workers=settings.FLOWDESK_STEP_BATCH, thread_name_prefix="flowdesk-step"
        )
    return found


class _Steps:
    """The steps one queue task runs: a single one in this thread, several side by side."""

    def __init__(self, actor: Actor, deadline: float | None) -> None:
        self.actor, self.deadline = actor, deadline
        self.outcomes: list[str] = []

    def run(self, leases: list) -> str:
        running: dict = {}
        while leases or running:
            if len(leases) == 1 and not running:  # one step: no thread, no waiting
                self._note([leases[0]])
                with context.bound(cause=leases[0].cause):
                    done = [_call_handler(leases[0])]
            else:
                current = contextvars.copy_context()
                for lease in leases:
                    running[_pool().submit(current.copy().run, _call_in_thread, lease)] = lease
                self._note(list(running.values()))
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                if len(finished) < len(running):
                    finished, _ = wait(running, timeout=GATHER_SECONDS)
                done = [future.result() for future in running if future in finished]
                for future in finished:
                    del running[future]
            leases = self._report(done, settings.FLOWDESK_STEP_BATCH - len(running))
        return _summary(self.outcomes)

    def _note(self, leases: list) -> None:
        until = time.time() + max(lease.timeout for lease in leases)
        progress.busy_until(
            until + settings.FLOWDESK_LEASE_MARGIN, *(lease.task_id for lease in leases)
        )

    def _report(self, done: list[engine.StepOutcome], room: int) -> list:
        """Record what finished (one transaction); returns the steps leased to this worker next."""
        within = self.deadline - time.monotonic() if self.deadline is not None else None
        for outcome in done:
            if outcome.error is None:
                self.outcomes.append("completed")
            else:
                self.outcomes.append("attempt failed" if outcome.retryable else "failed")
        report = functools.partial(
            engine.steps_report,
            outcomes=done,
            actor=self.actor,
            eager_within=within,
            eager_limit=room,
        )
        if len(done) == 1 and done[0].lease.cause is not None:
            with context.bound(cause=done[0].lease.cause):
                return report()
        return report()


def _summary(outcomes: list[str]) -> str:
    """One word for the queue task's result: the single step's, or the worst of a batch's."""
    for word in ("failed", "attempt failed"):
        if word in outcomes:
            return word
    return "completed"


def _call_in_thread(lease) -> engine.StepOutcome:
    try:
        return _call_handler(lease)
    finally:  # a handler that used the ORM opened this thread's own connection
        connections.close_all()


def _call_handler(lease) -> engine.StepOutcome:
    """Call the lease's handler: its result, or the error it raised (never raises)."""
    called = steps.call(lease.handler, lease.context)
    return engine.StepOutcome(
        lease, result=called.result, error=called.error, retryable=called.retryable
    )


def sweep_timers(limit: int = 1000) -> dict:
    """The periodic timer sweep (``ensure_schedules``; ``manage.py sweep_timers``)."""
    return engine.timers_sweep(limit=limit)


def start_children(*task_ids: int) -> str:
    """Start the children of PROCESS tasks (queued after the commit that scheduled them)."""
    engine.children_start(task_ids=task_ids)
    return "started"


def cancel_children(process_id: str) -> str:
    """Cancel the children of a cancelled process (queued after its cancellation's commit)."""
    return f"cancelled {len(engine.children_cancel(process_id=process_id))}"


def run_compensation(task_id, *legacy) -> str:
    """Run one compensation: take its lease, call the handler, report the result to the engine.

    ``(process_id, [task_ids])``: a message queued before compensations were engine work.
    """
    if legacy:
        return _run_legacy_compensations(legacy[0])
    progress.busy_until(time.time() + settings.FLOWDESK_LEASE_MARGIN, task_id)
    try:
        actor = _worker_actor()
        lease = engine.compensation_start(task_id=task_id, actor=actor)
        if lease is None:
            return "skipped"
        progress.busy_until(time.time() + lease.timeout + settings.FLOWDESK_LEASE_MARGIN, task_id)
        called = steps.call(lease.handler, lease.context)
        if not called.ok:
            return engine.compensation_fail(
                task_id=task_id, actor=actor, error=called.error, retryable=called.retryable
            )
        engine.compensation_complete(task_id=task_id, actor=actor, result=called.result)
        return "completed"
    finally:
        progress.idle()


def _run_legacy_compensations(task_ids: list[int]) -> str:
    actor = _worker_actor()
    for task_id in task_ids:
        found = engine.compensation_context(task_id=task_id)
        if found is None:
            continue
        handler_name, ctx = found
        called = steps.call(handler_name, ctx)
        engine.compensation_record(
            task_id=task_id,
            actor=actor,
            handler=handler_name,
            outcome="ok" if called.ok else f"failed: {called.error}",
        )
    return "legacy"


def ensure_schedules() -> Schedule:
    """Create (or fix) the one periodic schedule that sweeps due timers."""
    return queue.ensure_periodic(
        SWEEP_SCHEDULE_NAME,
        "processes.worker.sweep_timers",
        minutes=settings.FLOWDESK_SWEEP_MINUTES,
    )


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.2) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes (used by commands and tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


# --- worker supervision (manage.py workers, processes/supervisor/) -------------------------------


def heartbeat(supervisor_id: str, seq: int) -> int:
    """The worker supervisor's beat: a worker running it proves pusher -> worker.

    It notes the beat in the progress directory too: a beat that ran but never came back
    through the monitor means the results are stuck, however busy the workers are.
    """
    progress.write("beat", b"%20d\n" % seq)
    return seq


def heartbeat_returned(task) -> None:
    """The beat's django-q2 hook: it runs in the cluster's monitor, so it proves worker -> monitor.

    Records the beat on the supervisor's row, then drops the beat's task row so the list of
    successful tasks keeps real work.
    """
    from django_q.models import Task

    from processes.models import ClusterHeartbeat

    supervisor_id, seq = task.args[0], int(task.args[1])
    ClusterHeartbeat.objects.filter(pk=supervisor_id, returned_seq__lt=seq).update(
        returned_seq=seq, returned_at=timezone.now()
    )
    Task.objects.filter(pk=task.pk).delete()
