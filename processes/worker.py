"""django-q2 entry points. Thin and idempotent: they take ids and call one engine function each.

A step is delivered at least once (ORM broker) or at most once (Redis broker); either way the
engine's own timer sweep re-enqueues steps that nobody picked up or whose lease expired.
"""

from __future__ import annotations

import logging
import os
import socket
import time

from django.conf import settings
from django.utils import timezone
from django_q.models import Schedule

from processes import context, engine, queue
from processes.engine._run import _compensation_timeout, _step_timeout
from processes.events import Actor
from processes.models import TaskInstance
from processes.steps import PermanentStepError, RetryableStepError, registry

logger = logging.getLogger(__name__)

SWEEP_SCHEDULE_NAME = "flowdesk.sweep_timers"


def _worker_actor() -> Actor:
    return Actor.worker(f"worker {socket.gethostname()}:{os.getpid()}")


def run_step(task_id: int, *, eager: bool = False) -> str:
    """Run one service step: take the lease, call the handler, report the result to the engine.

    ``eager`` (the queue's entry point, ``run_steps``): when a completion makes service steps of
    the same process ready, the engine leases one of them to this worker in the completion's own
    transaction and it runs next, without a queue round trip; the others are queued.
    """
    # Told before the lease: a worker killed between here and the lease's commit would lose the
    # step (Redis delivers once); its supervisor reads the note and enqueues the step again.
    progress.busy_until(time.time() + settings.FLOWDESK_LEASE_MARGIN, task_id)
    try:
        actor = _worker_actor()
        lease = engine.task_start(task_id=task_id, actor=actor)
        if lease is None:
            return "skipped"
        # django-q2 stops this queue task after the first step's timeout + margin + the eager
        # budget (queue.enqueue_step): a step is chained only if its lease ends before that
        # (a second of slack for the time q2 spent before calling us).
        deadline = time.monotonic() + lease.timeout + settings.FLOWDESK_LEASE_MARGIN
        deadline += settings.FLOWDESK_EAGER_SECONDS - 1
        outcome = "completed"
        while lease is not None:
            progress.busy_until(
                time.time() + lease.timeout + settings.FLOWDESK_LEASE_MARGIN, lease.task_id
            )
            within = deadline - time.monotonic() if eager else None
            # a chained step's events are caused by its own task_scheduled, as a queued one's
            with context.bound(cause=lease.cause):
                outcome, lease = _run_handler(lease.task_id, actor, lease, within)
        return outcome
    finally:
        progress.idle()


def run_steps(task_id: int) -> str:
    """The queue's entry point for a step: ``run_step`` with eager dispatch (unless
    ``FLOWDESK_EAGER_STEPS=0``)."""
    return run_step(task_id, eager=settings.FLOWDESK_EAGER_STEPS)


def _run_handler(task_id: int, actor: Actor, lease: engine.StepLease, within=None):
    """Call the handler and report; returns the outcome and the next step's lease (eager)."""
    try:
        handler = registry.get(lease.handler)
        result = handler(lease.context)
        if result is None:
            result = {}
    except PermanentStepError as exc:
        engine.task_fail(
            task_id=task_id, actor=actor, error=str(exc), retryable=False, execution=lease.execution
        )
        return "failed", None
    except RetryableStepError as exc:
        engine.task_fail(task_id=task_id, actor=actor, error=str(exc), execution=lease.execution)
        return "attempt failed", None
    except Exception as exc:  # an unexpected bug in a handler is retried like a transient error
        logger.exception("step %s (%s) raised", task_id, lease.handler)
        engine.task_fail(
            task_id=task_id,
            actor=actor,
            error=f"{type(exc).__name__}: {exc}",
            execution=lease.execution,
        )
        return "attempt failed", None
    done = engine.task_complete(
        task_id=task_id,
        actor=actor,
        result=result,
        execution=lease.execution,
        eager_within=within,
    )
    return "completed", getattr(done, "next_lease", None)


def sweep_timers(limit: int = 1000) -> dict:
    """Act on every task whose timer is due (retry back-off, lost enqueue, lease, escalation,
    wait deadline, compensation) and every process whose deadline passed."""
    from processes.models import ProcessInstance

    now = timezone.now()
    due = TaskInstance.objects.due_for_wake(now).order_by("wake_at")
    late = ProcessInstance.objects.filter(deadline_at__lte=now).order_by("deadline_at")
    outcomes: dict[str, int] = {}
    acted = 0
    for what, rows, act in (  # the tasks first: what they do may close a late process
        ("timer of task", due, lambda pk: engine.task_wake(task_id=pk, now=now)),
        ("deadline of process", late, lambda pk: engine.process_deadline(process_id=pk, now=now)),
    ):
        ids = list(rows.values_list("id", flat=True)[:limit])
        acted += len(ids)
        for pk in ids:
            try:
                outcome = act(pk)
            except Exception:  # one bad row must not stop the others: logged, counted
                logger.exception("%s %s failed", what, pk)
                outcome = "error"
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    if acted:
        logger.info("sweep: %s", outcomes)
    return outcomes


def next_wake():
    """When the earliest timer (task ``wake_at`` or process ``deadline_at``) is due; None if none.

    Two index-only reads of the partial indexes ``task_wake_at`` and ``process_deadline_at``.
    """
    from django.db.models import Min

    from processes.models import ProcessInstance

    task = TaskInstance.objects.filter(wake_at__isnull=False).aggregate(m=Min("wake_at"))["m"]
    process = ProcessInstance.objects.filter(deadline_at__isnull=False).aggregate(
        m=Min("deadline_at")
    )["m"]
    found = [t for t in (task, process) if t is not None]
    return min(found) if found else None


def timer_loop(stop, *, tick: float | None = None, limit: int = 1000) -> None:
    """Run due timers to the second until ``stop`` (a ``threading.Event``) is set.

    One mechanism for every timer: sleep until the earliest ``wake_at``/``deadline_at`` (at
    most ``tick``, ``FLOWDESK_TIMER_TICK`` seconds, so a timer written meanwhile is seen within
    a tick), then ``sweep_timers``. A sweep that found ``limit`` due runs again at once. Run by
    ``manage.py workers`` (a thread of the supervisor) or ``manage.py timers``.
    """
    from django.db import close_old_connections, connection

    tick = settings.FLOWDESK_TIMER_TICK if tick is None else tick
    while not stop.is_set():
        try:
            if not connection.in_atomic_block:  # (a caller's transaction: a test)
                close_old_connections()
            outcome = sweep_timers(limit=limit)
            if sum(outcome.values()) >= limit:
                continue
            wake = next_wake()
        except Exception:
            logger.exception("timer loop: sweep failed; again in %ss", tick)
            wake = None
        wait = tick
        if wake is not None:
            wait = min(tick, max(0.0, (wake - timezone.now()).total_seconds()) + 0.005)
        stop.wait(wait)


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
        try:
            result = registry.get(lease.handler)(lease.context)
        except PermanentStepError as exc:
            return engine.compensation_fail(
                task_id=task_id, actor=actor, error=str(exc), retryable=False
            )
        except Exception as exc:
            logger.exception("compensation %s of task %s raised", lease.handler, task_id)
            error = (
                str(exc) if isinstance(exc, RetryableStepError) else f"{type(exc).__name__}: {exc}"
            )
            return engine.compensation_fail(task_id=task_id, actor=actor, error=error)
        engine.compensation_complete(
            task_id=task_id, actor=actor, result={} if result is None else result
        )
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
        try:
            registry.get(handler_name)(ctx)
            outcome = "ok"
        except Exception as exc:
            logger.exception("compensation %s of task %s failed", handler_name, task_id)
            outcome = f"failed: {type(exc).__name__}: {exc}"
        engine.compensation_record(
            task_id=task_id, actor=actor, handler=handler_name, outcome=outcome
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

PROGRESS_DIR_ENV = "FLOWDESK_PROGRESS_DIR"


class _Progress:
    """Tell this machine's worker supervisor what this worker process is doing.

    The supervisor sets ``FLOWDESK_PROGRESS_DIR`` for its cluster: each worker process keeps one
    file there, named by its pid, holding the time (epoch seconds) until which it runs a step and
    the step's task id, or ``0 0`` when idle; the file's mtime is its last step. The supervisor
    then does not take a heartbeat waiting behind steps still within their timeout for a stall,
    and when a worker dies in the middle of a step it enqueues that step again (or sweeps when
    its lease expires). One ``pwrite`` per change (a few microseconds); nothing at all without
    the variable (a bare ``qcluster``).
    """

    def __init__(self) -> None:
        self.pid: int | None = None
        self.fds: dict[str, int] = {}

    def busy_until(self, until: float, task_id: int) -> None:
        self.write(str(os.getpid()), b"%20.3f %20d\n" % (until, task_id))

    def idle(self) -> None:
        self.write(str(os.getpid()), b"%20.3f %20d\n" % (0, 0))

    def write(self, name: str, data: bytes) -> None:
        directory = os.environ.get(PROGRESS_DIR_ENV)
        if not directory:
            return
        try:
            if self.pid != os.getpid():  # a new (forked) worker: the parent's files aren't ours
                self.pid, self.fds = os.getpid(), {}
            fd = self.fds.get(name)
            if fd is None:
                fd = self.fds[name] = os.open(
                    os.path.join(directory, name), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600
                )
            os.pwrite(fd, data, 0)
        except OSError as exc:  # the supervisor's directory went away: not the step's problem
            self.fds.pop(name, None)
            logger.debug("progress note failed: %s", exc)


progress = _Progress()


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


def requeue_scheduled(limit: int = 10000, task_ids=None) -> int:
    """Enqueue every scheduled service step (and waiting compensation) again; return how many.

    Run after a cluster restart: with Redis, steps the dead cluster had taken from the broker
    (in its pusher or its queues) are gone, and waiting for ``FLOWDESK_REENQUEUE_AFTER`` would
    leave them idle for minutes. Enqueueing a step twice is harmless: ``engine.task_start`` skips
    a step that is not startable or holds a live lease. Steps inside their retry back-off are left
    to the timer sweep. ``task_ids``: only these (a step a dead worker had taken).
    """
    from processes.models import ACTIVE_PROCESS_STATES, ProcessDefinition, TaskState, TaskType

    now = timezone.now()
    scheduled = TaskInstance.objects.filter(
        state=TaskState.SCHEDULED,
        type=TaskType.SERVICE,
        process__state__in=ACTIVE_PROCESS_STATES,
    )
    if task_ids is not None:
        scheduled = scheduled.filter(pk__in=task_ids)
    compensations = _requeue_compensations(task_ids, now, limit)
    rows = list(
        scheduled.exclude(handler="")
        .exclude(scheduled_at__gt=now)
        .order_by("scheduled_at", "id")
        .values_list("id", "name", "process__definition_id")[:limit]
    )
    specs = {}
    for task_id, name, definition_id in rows:
        if definition_id not in specs:
            specs[definition_id] = ProcessDefinition.objects.get(pk=definition_id).parsed()
        # the same q2 timeout the engine gives the step when it schedules it
        queue.enqueue_step(task_id, timeout=_step_timeout(specs[definition_id].task(name)))
    return len(rows) + compensations


def _requeue_compensations(task_ids, now, limit: int) -> int:
    """``requeue_scheduled`` for compensations waiting for a worker (outside their back-off)."""
    from processes.models import ProcessDefinition, ProcessState, TaskState

    waiting = TaskInstance.objects.filter(
        state=TaskState.COMPENSATING, process__state=ProcessState.CANCELLING
    ).exclude(scheduled_at__gt=now)
    if task_ids is not None:
        waiting = waiting.filter(pk__in=task_ids)
    rows = list(waiting.order_by("id").values_list("id", "name", "process__definition_id")[:limit])
    for task_id, name, definition_id in rows:
        task_spec = ProcessDefinition.objects.get(pk=definition_id).parsed().task(name)
        # the head of its process runs; engine.compensation_start turns the others away
        queue.enqueue_compensation(task_id, timeout=_compensation_timeout(task_spec))
    return len(rows)
