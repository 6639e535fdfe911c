"""The unit of work every engine function shares, and the scheduling decisions.

One engine event is one transaction: ``_lock`` locks the process row (every event of one
instance is serialised by it) and loads its tasks into a ``_Run``; the event applies django-fsm
transitions and appends events to the run's ``log``; ``_advance`` schedules what became ready,
closes finished stages and, after the last one, the process; ``_Run.save`` writes back only the
changed rows and columns, appends the events and leaves the rest to after commit: steps,
compensations and children queued, announcements made (``queue.on_commit``, the one path).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_fsm import TransitionNotAllowed

from processes import authority, events, hooks, queue
from processes import spec as spec_module
from processes.db import core, internals
from processes.db import engine as db_engine
from processes.engine import handlers
from processes.engine.assignment import assign
from processes.engine.handlers import _spec_for, checked_result, handler_timeout, result_breaks
from processes.errors import Conflict, Forbidden, NotFound
from processes.events import SYSTEM, Actor
from processes.models import (
    ACTIVE_PROCESS_STATES,
    DONE_TASK_STATES,
    OPEN_TASK_STATES,
    EventType,
    ProcessDefinition,
    ProcessInstance,
    ProcessState,
    TaskInstance,
    TaskState,
    TaskType,
)
from processes.selectors import start_task_payload
from processes.steps import Called

logger = logging.getLogger(__name__)


MAX_LOST_LEASES = 3  # a step whose worker vanished this many extra times fails for good
BULK_UPDATE_FROM = 6  # changed tasks in one event above which one bulk UPDATE beats one per row

TASK_WRITTEN_ONCE = (
    "id", "process", "stage", "stage_index", "name", "type", "handler", "task_queue", "created_at"
)  # fmt: skip

PROCESS_WRITTEN_ONCE = (
    "id", "definition", "definition_key", "business_key", "started_by", "started_by_user",
    "unique_ever", "parent", "parent_task", "created_at",
)  # fmt: skip

TASK_FIELDS = [
    f.name for f in TaskInstance._meta.concrete_fields if f.name not in TASK_WRITTEN_ONCE
]
TASK_ATTNAMES = [TaskInstance._meta.get_field(name).attname for name in TASK_FIELDS]

PROCESS_FIELDS = [
    f.name for f in ProcessInstance._meta.concrete_fields if f.name not in PROCESS_WRITTEN_ONCE
]


@dataclass(frozen=True)
class TaskResult:
    """What an event did to a task: applied, or a repeat recorded as a duplicate (nothing
    changed)."""

    task: TaskInstance
    duplicate: bool = False


# Engine modules this one can't import (they import it) that act when a unit of work finishes.
FINISH_HOOKS: list = []


@dataclass
class _Run:
    """What one engine transaction loaded and changed, the events it appends (``log``) and
    what it leaves to after its commit."""

    process: ProcessInstance
    tasks: dict[str, TaskInstance]
    actor: Actor
    dirty: set[str] = field(default_factory=set)
    to_enqueue: list[TaskInstance] = field(default_factory=list)
    to_spawn: list[TaskInstance] = field(default_factory=list)  # PROCESS tasks just scheduled
    to_compensate: list[TaskInstance] = field(default_factory=list)
    opened: list[TaskInstance] = field(default_factory=list)  # human tasks just scheduled
    incidents: list[tuple[TaskInstance, str]] = field(default_factory=list)  # to announce
    loaded: dict | None = None  # process field values as read, to write back only changes
    loaded_tasks: dict | None = None  # task id -> its TASK_ATTNAMES values as read
    log: events.EventLog = field(init=False)
    written: list = field(init=False, default_factory=list)  # the events, once written

    def __post_init__(self) -> None:
        self.log = events.EventLog(self.process)

    @property
    def spec(self) -> spec_module.ProcessSpec:
        return _spec_for(self.process.definition)

    def task_spec(self, task: TaskInstance) -> spec_module.TaskSpec:
        return self.spec.task(task.name)

    def touch(self, task: TaskInstance) -> None:
        self.dirty.add(task.name)

    def _changed_process_fields(self) -> list[str]:
        """Only what changed: most events leave the variables alone, and rewriting a large
        variables document on every event costs CPU, WAL and TOAST churn for nothing.

        The engine replaces ``variables`` with a new dict on every change (never mutates it in
        place), so comparing with the value as read is exact.
        """
        if self.loaded is None:
            return PROCESS_FIELDS
        process = self.process
        return [
            name
            for name in PROCESS_FIELDS
            if name == "updated_at" or getattr(process, name) != self.loaded[name]
        ]

    def _changed_task_fields(self, task: TaskInstance) -> list[str]:
        """The fields of ``task`` that differ from the row as read (all of a task not read):
        an UPDATE of only those is shorter to build and send. Exact for the same reason."""
        loaded = self.loaded_tasks.get(task.pk) if self.loaded_tasks is not None else None
        if loaded is None:
            return TASK_FIELDS
        return [
            name
            for name, attname, value in zip(TASK_FIELDS, TASK_ATTNAMES, loaded, strict=True)
            if getattr(task, attname) != value
        ]

    def save(self) -> None:
        _save_runs([self])

    def index_search(self) -> None:
        """Keep what the case is found by (``spec.search_text``) in step with its variables."""
        p = self.process
        p.search_text = spec_module.search_text(self.spec, p.business_key, p.variables)

    def finish(self, written: list | None = None) -> None:
        """After the rows are written: append the events (unless ``written`` already), leave
        the rest to after the commit."""
        if written is None:
            written = events.flush(self.log)
        self.written = written
        self.announce()  # (before a parent hears of this run: its incident follows this one's)
        for hook in FINISH_HOOKS:  # call activities (engine.subprocess), which import this module
            hook(self)
        if self.to_enqueue:
            scheduled = {e.task_id: e.pk for e in written if e.type == EventType.TASK_SCHEDULED}
            process_id = str(self.process.pk)
            steps = [
                (t.id, handler_timeout(self.task_spec(t)), scheduled.get(t.id), process_id)
                for t in self.to_enqueue
            ]
            # The steps carry on this transaction's correlation id (the request's, or the one
            # its events got), whenever the commit's callbacks run.
            correlation = written[0].correlation_id if written else ""
            queue.on_commit(queue.enqueue_steps, steps, correlation=correlation)
        if self.to_compensate:
            comps = [(t.id, handler_timeout(self.task_spec(t))) for t in self.to_compensate]
            queue.on_commit(queue.enqueue_compensations, comps)

    def announce(self) -> None:
        """Announce after commit the human tasks opened and the incidents opened (their rows
        are written: every task has its id now)."""
        for task in self.opened:
            hooks.after_commit("task_opened", task_id=task.pk)
        for task, error in self.incidents:
            hooks.after_commit(
                "incident_opened", process_id=self.process.pk, task_id=task.pk, error=error
            )
        self.opened, self.incidents = [], []


def _save_runs(runs: list[_Run]) -> None:
    """Write back the changed rows of ``runs`` (several: a worker's group commit) and their
    events in one statement (bulk_update's CASE/WHEN cost ~10 ms of CPU for two rows), then
    finish each: every run is written before any finishes (a child that finishes locks and
    changes its parent, which may be one of ``runs``)."""
    updates, parts = [], []
    for run in runs:
        changed = [run.tasks[n] for n in run.dirty]
        run.process.updated_at = timezone.now()
        run.index_search()
        if len(changed) > BULK_UPDATE_FROM:
            TaskInstance.objects.bulk_update(changed, TASK_FIELDS)
            core.update_row(run.process, run._changed_process_fields())
            parts.append((run, None, events.flush(run.log)))
            continue
        updates += [(task, run._changed_task_fields(task)) for task in changed]
        updates.append((run.process, run._changed_process_fields()))
        parts.append((run, events.take_pending(run.log), None))
    internals.write(updates, [event for _, taken, _ in parts for event in taken or ()])
    for run, taken, written in parts:
        run.finish(written if taken is None else events.written(run.log, taken))


def _lock(process_id=None, *, task_id=None) -> _Run:
    """Lock the process row (serialises every event of one instance) and load its tasks."""
    try:
        process, tasks = db_engine.lock_with_tasks(process_id, task_id=task_id)
    except (ValidationError, ValueError, TypeError):
        process = None
    if process is None:
        what = f"process {process_id}" if task_id is None else f"task {task_id}"
        raise NotFound(f"{what} not found")
    return _run_of(process, tasks)


def _lock_tasks(task_ids: list[int]) -> list[_Run]:
    """Lock the processes of ``task_ids`` (in id order) and load their tasks: several processes
    in one transaction (a worker's group commit). Unknown ids are left out."""
    ids = [i for i in task_ids if isinstance(i, int) and 0 < i <= core.MAX_DB_INT]
    return [_run_of(p, tasks) for p, tasks in db_engine.lock_many_with_tasks(ids)] if ids else []


def _run_of(process: ProcessInstance, tasks: list[TaskInstance]) -> _Run:
    loaded = {name: getattr(process, name) for name in PROCESS_FIELDS}
    loaded_tasks = {t.pk: [getattr(t, attname) for attname in TASK_ATTNAMES] for t in tasks}
    return _Run(
        process=process,
        tasks={t.name: t for t in tasks},
        actor=SYSTEM,
        loaded=loaded,
        loaded_tasks=loaded_tasks,
    )


def _lock_for_task(task_id) -> tuple[_Run, TaskInstance]:
    """Lock the process of ``task_id`` (one query finds and locks it) and return the task too."""
    try:
        task_id = int(task_id)
    except (TypeError, ValueError):
        raise NotFound(f"task {task_id} not found") from None
    if not 0 < task_id <= core.MAX_DB_INT:  # no such id, and PostgreSQL would refuse it
        raise NotFound(f"task {task_id} not found")
    run = _lock(task_id=task_id)
    task = next(t for t in run.tasks.values() if t.pk == task_id)
    return run, task


def _require_grant(actor: Actor, perms, definition_key: str, what: str) -> None:
    """People need the definition grant for what they do (``authority``); the system, workers
    and the engine's own timers always may."""
    if actor.user is not None and not authority.has_definition_perm(
        actor.user, perms, definition_key
    ):
        raise Forbidden(f"you may not {what} of {definition_key!r}")


def _transition(task_or_process, name: str, *args) -> None:
    try:
        getattr(task_or_process, name)(*args)
    except TransitionNotAllowed:
        what = (
            f"task {task_or_process.name!r}"
            if isinstance(task_or_process, TaskInstance)
            else str(task_or_process)
            if isinstance(task_or_process, ProcessDefinition)
            else "process"
        )
        state = getattr(task_or_process, "state", None) or getattr(task_or_process, "status", "")
        raise Conflict(f"cannot {name.replace('_', ' ')} {what}: it is {state}") from None


def _stage_tasks(run: _Run, stage: str) -> list[TaskInstance]:
    return [t for t in run.tasks.values() if t.stage == stage]


WAITING_TYPES = (TaskType.TIMER, TaskType.MESSAGE)


def _schedule(run: _Run, task: TaskInstance, now) -> None:
    from processes.engine import waits  # (it imports this module)

    task_spec = run.task_spec(task)
    _transition(task, "schedule")
    if task_spec.inline:
        _run_inline(run, task, task_spec)
        return
    payload = barred = covered = None
    if task.type == TaskType.HUMAN:
        task.candidate_role = task_spec.assigned_to or ""
        task.visibility = run.spec.visibility
        barred, covered = assign(run, task, task_spec, now)
        if task_spec.due is not None:
            task.due_at = now + task_spec.due
        elif task_spec.escalation is not None:
            task.due_at = now + task_spec.escalation.after
        if task_spec.escalation is not None:
            task.wake_at = now + task_spec.escalation.after
        elif task_spec.wait_deadline is not None:
            task.wake_at = task.due_at  # on_timeout when it passes
    elif task.is_external:
        payload = start_task_payload(run.process, task, task_spec)
        wait = task_spec.wait_deadline
        task.wake_at = now + wait if wait is not None else None  # on_timeout when it passes
    elif task.type in WAITING_TYPES:
        waits.start_waiting(run, task, task_spec, now)
    elif task.type == TaskType.PROCESS:
        # Its children start once its row is committed; if that never happens (the process
        # died after the commit), the timer sweep starts them when this timer is due.
        task.wake_at = now + dt.timedelta(seconds=settings.FLOWDESK_REENQUEUE_AFTER)
        run.to_spawn.append(task)
    else:
        task.wake_at = now + dt.timedelta(seconds=settings.FLOWDESK_REENQUEUE_AFTER)
        run.to_enqueue.append(task)
    run.touch(task)
    if task_spec.waiting_status:  # what the case waits for now (history.rebuild reads it too)
        run.process.business_status = task_spec.waiting_status
    events.task_scheduled(log=run.log, actor=run.actor, task=task, payload=payload, barred=barred)
    if covered:
        events.task_substituted(log=run.log, actor=run.actor, task=task, **covered)
    if task.type == TaskType.MESSAGE:
        waits.take_buffered(run, task)  # a message that came before: delivered now
    if task.type == TaskType.HUMAN:
        run.opened.append(task)  # announced once written (a new task has no id before)


def _run_inline(run: _Run, task: TaskInstance, task_spec: spec_module.TaskSpec) -> None:
    """Run a pure-compute step now, in this transaction: one event (completed, or its failed
    attempt); a retry waits out its back-off and runs on a worker like any step."""
    _transition(task, "start")
    run.touch(task)
    outcome = handlers.call_inline(
        task_spec.handler, handlers.step_context(task, task_spec, run.process)
    )
    if outcome.ok:
        clean, problems = checked_result(task_spec, outcome.result)
        if not problems:
            _complete(run, task, clean, inline=True)
            return
        outcome = Called(error=result_breaks(task, problems), retryable=True)
    task.last_error = outcome.error[:4000]
    if outcome.retryable and task.attempts < task_spec.retry.max_attempts:
        retry_at = timezone.now() + task_spec.retry.delay_after(task.attempts)
        _transition(task, "retry_later")
        task.scheduled_at = task.wake_at = retry_at  # the timer sweep queues it then
        events.task_attempt_failed(
            log=run.log, actor=run.actor, task=task, error=task.last_error,
            retry_at=retry_at,
        )  # fmt: skip
        return
    _transition(task, "fail")
    events.task_failed(log=run.log, actor=run.actor, task=task, error=task.last_error)
    _after_task_failed_for_good(run, task, task.last_error)


def _advance(run: _Run) -> None:
    """Schedule what is ready, close finished stages and, after the last one, the process."""
    process = run.process
    if process.state not in ACTIVE_PROCESS_STATES:
        return
    now = timezone.now()
    stage_names = [s.name for s in run.spec.stages]
    while True:
        stage = process.current_stage
        stage_tasks = _stage_tasks(run, stage)
        changed = True
        while changed:
            changed = False
            for task in stage_tasks:
                if task.state != TaskState.PENDING:
                    continue
                task_spec = run.task_spec(task)
                if not all(run.tasks[p].state in DONE_TASK_STATES for p in task_spec.parents):
                    continue
                if not spec_module.evaluate_condition(task_spec.condition, process.variables):
                    _transition(task, "skip")
                    run.touch(task)
                    # The definition's rule decided, not whoever's event made the task ready.
                    events.task_skipped(
                        log=run.log,
                        actor=SYSTEM,
                        task=task,
                        reason=f"condition false: {spec_module.describe_condition(task_spec.condition)}",
                        cause=events.SKIP_CONDITION,
                    )
                else:
                    _schedule(run, task, now)
                changed = True
        if not all(t.state in DONE_TASK_STATES for t in stage_tasks):
            return
        events.stage_completed(log=run.log, actor=run.actor, stage=stage)
        index = stage_names.index(stage)
        if index + 1 >= len(stage_names):
            if process.state == ProcessState.RUNNING:
                _transition(process, "complete")
                events.process_completed(log=run.log, actor=run.actor)
            return
        process.current_stage = stage_names[index + 1]
        events.stage_started(log=run.log, actor=run.actor, stage=process.current_stage)


def _after_task_failed_for_good(run: _Run, task: TaskInstance, error: str) -> None:
    """An incident (one SMS), or under ``on_failure: compensate`` the undoing of what the
    process did (the same one SMS, then no other: it ends ``compensated``)."""
    process = run.process
    undo = run.spec.on_failure == "compensate" and process.state in ACTIVE_PROCESS_STATES
    if process.state == ProcessState.RUNNING and not undo:
        _transition(process, "open_incident")
    events.process_failed(log=run.log, actor=run.actor, task=task, error=error)
    if run.spec.on_error_notify and run.task_spec(task).notify_on_error:
        run.incidents.append((task, error))  # announced once written
    if undo:
        from processes.engine import compensation  # it builds on this module

        compensation.undo_after_failure(run, task, error)


def _maybe_resolve_incident(run: _Run) -> None:
    """Resolve the incident once no task failed and no task waits past its deadline."""
    process = run.process
    if process.state == ProcessState.FAILED and not any(
        t.state == TaskState.FAILED or (t.timed_out_at and t.state in OPEN_TASK_STATES)
        for t in run.tasks.values()
    ):
        _transition(process, "resolve_incident")
        events.process_resumed(log=run.log, actor=run.actor)


HUMAN_TASK_REFUSAL = "human tasks are decided in the inbox or through /api/tasks/{id}/complete/"


def _complete(run: _Run, task: TaskInstance, result: Any, *, inline: bool = False) -> None:
    _transition(task, "complete")
    task.result = result
    task.last_error = ""
    run.touch(task)
    run.process.variables = {**run.process.variables, task.name: result}
    business_status = run.task_spec(task).business_status
    if business_status:
        run.process.business_status = business_status
    events.task_completed(log=run.log, actor=run.actor, task=task, result=result, inline=inline)
    if task.timed_out_at is not None:  # the late answer ends its deadline's incident
        _maybe_resolve_incident(run)
