"""The only code that changes process and task state.

Every public function is one transaction: lock the ProcessInstance row, apply django-fsm
transitions, append events, decide what becomes ready, commit. Side effects (queueing steps,
alerts, notifications) are registered with ``transaction.on_commit`` and happen after commit.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_fsm import TransitionNotAllowed

from processes import authority, events
from processes import spec as spec_module
from processes.db import core as raw
from processes.errors import Conflict, Forbidden, InvalidInput, NotFound
from processes.events import SYSTEM, Actor
from processes.models import (
    ACTIVE_PROCESS_STATES,
    DONE_TASK_STATES,
    DefinitionComponent,
    DefinitionStatus,
    ProcessDefinition,
    ProcessInstance,
    ProcessState,
    TaskInstance,
    TaskState,
    TaskType,
)
from processes.steps import StepContext

logger = logging.getLogger(__name__)

MAX_LOST_LEASES = 3  # a step whose worker vanished this many extra times fails for good
BULK_UPDATE_FROM = 6  # changed tasks in one event above which one bulk UPDATE beats one per row

TASK_FIELDS = [
    "state",
    "attempts",
    "execution",
    "result",
    "last_error",
    "candidate_role",
    "assignee",
    "claimed_by",
    "decided_by",
    "visibility",
    "participants",
    "due_at",
    "escalated_at",
    "wake_at",
    "scheduled_at",
    "started_at",
    "finished_at",
]
PROCESS_FIELDS = [
    "state",
    "business_status",
    "current_stage",
    "variables",
    "last_seq",
    "updated_at",
    "completed_at",
]


# --- the unit of work -----------------------------------------------------------------------------


_SPEC_CACHE: dict[tuple, spec_module.ProcessSpec] = {}


def _spec_for(definition: ProcessDefinition) -> spec_module.ProcessSpec:
    """The parsed spec of a published definition, cached: published specs never change.

    The key includes key, version and publication time, so a reused id (SQLite after a
    rollback, a restored backup) can never serve another definition's spec.
    """
    cache_key = (definition.pk, definition.key, definition.version, definition.published_at)
    spec = _SPEC_CACHE.get(cache_key)
    if spec is None:
        if len(_SPEC_CACHE) > 512:
            _SPEC_CACHE.clear()
        spec = _SPEC_CACHE[cache_key] = definition.parsed()
    return spec


@dataclass
class _Run:
    """What one engine transaction loaded and changed."""

    process: ProcessInstance
    tasks: dict[str, TaskInstance]
    actor: Actor
    dirty: set[str] = field(default_factory=set)
    to_enqueue: list[TaskInstance] = field(default_factory=list)
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    loaded: dict | None = None  # process field values as read, to write back only changes

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

    def save(self) -> None:
        changed = [self.tasks[n] for n in self.dirty]
        if len(changed) <= BULK_UPDATE_FROM:
            # One plain UPDATE per task: bulk_update's CASE/WHEN costs ~10 ms of CPU for two rows,
            # an UPDATE round trip on a local connection a fraction of that.
            for task in changed:
                raw.update(task, TASK_FIELDS)
        else:
            TaskInstance.objects.bulk_update(changed, TASK_FIELDS)
        self.process.updated_at = timezone.now()
        raw.update(self.process, self._changed_process_fields())
        self.finish()

    def finish(self) -> None:
        """After the rows are written: append the events, queue side effects for after commit."""
        events.flush(self.process)
        if self.to_enqueue:
            steps = [(t.id, _step_timeout(self.task_spec(t))) for t in self.to_enqueue]
            transaction.on_commit(lambda: _enqueue_steps(steps))
        for callback in self.after_commit:
            transaction.on_commit(callback)


def _lock(process_id=None, *, task_id=None) -> _Run:
    """Lock the process row (serialises every event of one instance) and load its tasks."""
    try:
        if task_id is None:
            where, param = "p.id = %s", raw.prep(ProcessInstance, "id", process_id)
        else:
            where = f"p.id = (SELECT t.process_id FROM {raw.table(TaskInstance)} t WHERE t.id = %s)"
            param = task_id
        # FOR UPDATE OF the process row only: the definition row joined is not locked.
        process = ProcessInstance.objects.one_with_definition(where, [param], lock=True)
    except (ValidationError, ValueError, TypeError):
        process = None
    if process is None:
        what = f"process {process_id}" if task_id is None else f"task {task_id}"
        raise NotFound(f"{what} not found")
    tasks = {t.name: t for t in TaskInstance.objects.of_process(process.pk)}
    loaded = {name: getattr(process, name) for name in PROCESS_FIELDS}
    return _Run(process=process, tasks=tasks, actor=SYSTEM, loaded=loaded)


def _lock_for_task(task_id) -> tuple[_Run, TaskInstance]:
    """Lock the process of ``task_id`` (one query finds and locks it) and return the task too."""
    try:
        task_id = int(task_id)
    except (TypeError, ValueError):
        raise NotFound(f"task {task_id} not found") from None
    if not 0 < task_id <= raw.MAX_DB_INT:  # no such id, and PostgreSQL would refuse it
        raise NotFound(f"task {task_id} not found")
    run = _lock(task_id=task_id)
    task = next(t for t in run.tasks.values() if t.pk == task_id)
    return run, task


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


def _step_timeout(task_spec: spec_module.TaskSpec) -> int:
    if task_spec.timeout is not None:
        return max(1, int(task_spec.timeout.total_seconds()))
    return settings.FLOWDESK_DEFAULT_STEP_TIMEOUT


def _enqueue_steps(steps: list[tuple[int, int]]) -> None:
    from processes import worker

    for task_id, timeout in steps:
        worker.enqueue_step(task_id, timeout=timeout)


# --- scheduling decisions -------------------------------------------------------------------------


def _stage_tasks(run: _Run, stage: str) -> list[TaskInstance]:
    return [t for t in run.tasks.values() if t.stage == stage]


def _schedule(run: _Run, task: TaskInstance, now) -> None:
    task_spec = run.task_spec(task)
    _transition(task, "schedule")
    payload = barred = None
    if task.type == TaskType.HUMAN:
        task.candidate_role = task_spec.assigned_to or ""
        task.visibility = run.spec.visibility
        task.assignee, barred = _resolve_assignee(run, task, task_spec)
        if task.assignee is not None:
            _add_participant(task, task.assignee.pk)
        if task_spec.due is not None:
            task.due_at = now + task_spec.due
        elif task_spec.escalation is not None:
            task.due_at = now + task_spec.escalation.after
        if task_spec.escalation is not None:
            task.wake_at = now + task_spec.escalation.after
    elif task.is_external:
        payload = start_task_payload(run.process, task, task_spec)
        task.wake_at = None
    else:
        task.wake_at = now + dt.timedelta(seconds=settings.FLOWDESK_REENQUEUE_AFTER)
        run.to_enqueue.append(task)
    run.touch(task)
    events.task_scheduled(
        process=run.process, actor=run.actor, task=task, payload=payload, barred=barred
    )


def _resolve_assignee(run: _Run, task: TaskInstance, task_spec: spec_module.TaskSpec):
    """The spec's assignee, unless separation of duties bars them (then the role decides).

    Returns (user or None, what barred the named person or None).
    """
    if not task_spec.assignee:
        return None, None
    username = spec_module.lookup(run.process.variables, task_spec.assignee)
    if not isinstance(username, str) or not username:
        return None, None
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        return None, None
    refusal = authority.separation_refusal(
        user, task, process=run.process, spec=run.spec, tasks=run.tasks
    )
    if refusal:
        return None, {"user": username, "rule": refusal}
    return user, None


def _add_participant(task: TaskInstance, user_id: int) -> None:
    if user_id not in (task.participants or []):
        task.participants = [*(task.participants or []), user_id]


def start_task_payload(process, task, task_spec=None) -> dict:
    """The seed's StartTask message, with the task's extra template fields packed in."""
    payload = {
        "business_ref_no": process.business_key,
        "component_name": process.definition.component_name or process.definition_key,
        "event_name": "StartTask",
        "stage_name": task.stage,
        "task_name": task.name,
        "task_type": task.type,
    }
    if task.task_queue:
        payload["task_queue"] = task.task_queue
    if task_spec is not None:
        for key, value in task_spec.extra.items():
            payload.setdefault(key, value)
    return payload


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
                    events.task_skipped(
                        process=process,
                        actor=run.actor,
                        task=task,
                        reason=f"condition false: {spec_module.describe_condition(task_spec.condition)}",
                    )
                else:
                    _schedule(run, task, now)
                changed = True
        if not all(t.state in DONE_TASK_STATES for t in stage_tasks):
            return
        events.stage_completed(process=process, actor=run.actor, stage=stage)
        index = stage_names.index(stage)
        if index + 1 >= len(stage_names):
            if process.state == ProcessState.RUNNING:
                _transition(process, "complete")
                events.process_completed(process=process, actor=run.actor)
            return
        process.current_stage = stage_names[index + 1]
        events.stage_started(process=process, actor=run.actor, stage=process.current_stage)


def _after_task_failed_for_good(run: _Run, task: TaskInstance, error: str) -> None:
    process = run.process
    if process.state == ProcessState.RUNNING:
        _transition(process, "open_incident")
    events.process_failed(process=process, actor=run.actor, task=task, error=error)
    if run.spec.on_error_notify and run.task_spec(task).notify_on_error:
        process_id, task_id = process.pk, task.pk
        run.after_commit.append(lambda: _alert_incident(process_id, task_id, error))


def _alert_incident(process_id, task_id, error: str) -> None:
    from integrations import alerts

    try:
        alerts.incident_opened(process_id=process_id, task_id=task_id, error=error)
    except Exception:  # an alert that can't be sent never breaks the process
        logger.exception("incident alert for task %s failed", task_id)


def _maybe_resolve_incident(run: _Run) -> None:
    process = run.process
    if process.state == ProcessState.FAILED and not any(
        t.state == TaskState.FAILED for t in run.tasks.values()
    ):
        _transition(process, "resolve_incident")
        events.process_resumed(process=process, actor=run.actor)


# --- definitions ----------------------------------------------------------------------------------


@transaction.atomic
def definition_import(
    *, data: Any, actor: Actor, key: str | None = None, publish: bool = True
) -> tuple[ProcessDefinition, bool]:
    """Validate ``data`` and store it as the next version of its key; reuse an identical newest one.

    Returns (definition, created). Raises ``spec.SpecValidationError`` listing every problem,
    ``Conflict`` when its ``component_name`` belongs to another key, ``Forbidden`` when a person
    may not publish this key (``authority.may_publish``).
    """
    if key is not None and isinstance(data, dict):
        data = {**data, "key": key}
    elif (
        isinstance(data, dict) and "key" not in data and isinstance(data.get("component_name"), str)
    ):
        # A seed template imported again by its component name is the next version of the key
        # that owns that name, not a new key.
        owner = _component_owner(data["component_name"])
        if owner is not None:
            data = {**data, "key": owner}
    parsed = spec_module.parse_or_raise(data)
    _check_may_publish(actor, parsed.key)
    is_new_key = not ProcessDefinition.objects.filter(key=parsed.key).exists()
    _claim_component(parsed.component_name, parsed.key)
    latest = (
        ProcessDefinition.objects.select_for_update()
        .filter(key=parsed.key)
        .order_by("-version")
        .first()
    )
    same = latest is not None and (
        {**latest.spec, "key": latest.key} == {**data, "key": parsed.key}
    )
    if same and latest.status != DefinitionStatus.RETIRED:
        if publish and latest.status == DefinitionStatus.DRAFT:
            latest.publish()
            latest.save()
        return latest, False
    definition = ProcessDefinition(
        key=parsed.key,
        version=(latest.version + 1) if latest else 1,
        name=parsed.name,
        component_name=parsed.component_name or "",
        description=parsed.description,
        spec=data,
        created_by=actor.user if actor.user is not None and actor.user.pk else None,
    )
    if publish:
        definition.publish()
    definition.save()
    if is_new_key and actor.user is not None:
        authority.grant_first_publisher(actor.user, definition)
    return definition, True


def _check_may_publish(actor: Actor, key: str) -> None:
    """People need the publish right on the key; the system (commands, set-up) always may."""
    if actor.user is not None and not authority.may_publish(actor.user, key):
        raise Forbidden(f"you may not publish versions of {key!r}")


def _component_owner(component_name: str) -> str | None:
    return (
        DefinitionComponent.objects.filter(component_name=component_name)
        .values_list("key", flat=True)
        .first()
    )


def _claim_component(component_name: str | None, key: str) -> None:
    """Make ``key`` the owner of ``component_name``, or refuse when another key owns it."""
    if not component_name:
        return
    try:
        with transaction.atomic():
            owner, _ = DefinitionComponent.objects.get_or_create(
                component_name=component_name, defaults={"key": key}
            )
    except IntegrityError:  # a concurrent import claimed it first
        owner = DefinitionComponent.objects.get(component_name=component_name)
    if owner.key != key:
        raise Conflict(
            f"component_name {component_name!r} belongs to definition {owner.key!r}: import "
            f"this as a new version of {owner.key!r} or give it another component_name",
            fields={"component_name": [f"already used by definition {owner.key!r}"]},
        )


@transaction.atomic
def definition_publish(*, definition_id: int, actor: Actor) -> ProcessDefinition:
    definition = ProcessDefinition.objects.select_for_update().get(pk=definition_id)
    _check_may_publish(actor, definition.key)
    spec_module.parse_or_raise(definition.spec)  # handlers may have changed since the draft
    _transition(definition, "publish")
    definition.save()
    return definition


@transaction.atomic
def definition_retire(*, definition_id: int, actor: Actor) -> ProcessDefinition:
    definition = ProcessDefinition.objects.select_for_update().get(pk=definition_id)
    _check_may_publish(actor, definition.key)
    _transition(definition, "retire")
    definition.save()
    return definition


@transaction.atomic
def definition_update_draft(*, definition_id: int, data: Any, actor: Actor) -> ProcessDefinition:
    """Replace a draft's spec (validated); a published or retired spec never changes."""
    definition = ProcessDefinition.objects.select_for_update().get(pk=definition_id)
    _check_may_publish(actor, definition.key)
    if definition.status != DefinitionStatus.DRAFT:
        raise Conflict(f"{definition} is {definition.status}: save it as a new version instead")
    if isinstance(data, dict) and "key" not in data:
        data = {**data, "key": definition.key}
    parsed = spec_module.parse_or_raise(data)
    if parsed.key != definition.key:
        raise spec_module.SpecValidationError(
            [spec_module.SpecError("key", f"must stay {definition.key!r} for this draft")]
        )
    _claim_component(parsed.component_name, definition.key)
    definition.spec = data
    definition.name = parsed.name
    definition.component_name = parsed.component_name or ""
    definition.description = parsed.description
    definition.save(update_fields=["spec", "name", "component_name", "description"])
    return definition


def find_definition(*, key: str | None = None, component_name: str | None = None):
    """The newest published version of ``key``, or of the key owning ``component_name``."""
    if not key and component_name:
        key = _component_owner(component_name)
    definition = None
    if key:
        definition = (
            ProcessDefinition.objects.published().filter(key=key).order_by("-version").first()
        )
    if definition is None:
        raise NotFound(f"no published definition {key or component_name!r}")
    return definition


# --- processes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartResult:
    process: ProcessInstance
    created: bool
    tasks: list[TaskInstance] | None = None  # every task of a new instance, as written


def process_start(
    *,
    definition: ProcessDefinition | None = None,
    definition_key: str | None = None,
    component_name: str | None = None,
    business_key: str,
    input: dict | None = None,
    actor: Actor,
) -> StartResult:
    """Start ``definition``, or the newest published version of ``definition_key`` or
    ``component_name``. The same business key while active returns that instance; under the
    definition's ``business_key_unique: "ever"``, any earlier instance of it (a second run never
    starts)."""
    if not isinstance(business_key, str) or not business_key.strip() or len(business_key) > 200:
        raise InvalidInput(
            "business_key must be a non-empty string of at most 200 characters",
            fields={"business_key": ["must be a non-empty string of at most 200 characters"]},
        )
    if input is None:
        input = {}
    if not isinstance(input, dict):
        raise InvalidInput("input must be a JSON object", fields={"input": ["must be an object"]})
    if definition is None:
        definition = find_definition(key=definition_key, component_name=component_name)
    ever = _spec_for(definition).business_key_unique == "ever"
    existing = _existing_instance(definition.key, business_key, ever=ever)
    if existing is not None:
        if existing.definition_id == definition.pk:
            existing.definition = definition  # already loaded: don't read it again
        return StartResult(existing, False)
    try:
        with transaction.atomic():
            process, tasks = _create_instance(definition, business_key, input, actor)
    except IntegrityError:
        # Someone started the same business key at the same moment: theirs wins.
        existing = _existing_instance(definition.key, business_key, ever=ever)
        if existing is None:
            raise
        return StartResult(existing, False)
    return StartResult(process, True, tasks)


def _existing_instance(definition_key: str, business_key: str, *, ever: bool):
    """The running or failed instance of this business key (at most one: a unique index), or
    with ``ever`` the newest instance of it in any state."""
    # Fixed SQL (processes/db/): every start asks it. The states are written in, not bound,
    # so a prepared statement's generic plan can still use the partial unique index.
    states = ", ".join(f"'{state}'" for state in ACTIVE_PROCESS_STATES)
    where = "" if ever else f" AND p.state IN ({states})"
    sql = (
        f"SELECT {raw.columns(ProcessInstance, 'p')} FROM {raw.table(ProcessInstance)} p "
        f"WHERE p.definition_key = %s AND p.business_key = %s{where} "
        "ORDER BY p.created_at DESC LIMIT 1"
    )
    return next(iter(ProcessInstance.objects.raw(sql, [definition_key, business_key])), None)


def _create_instance(definition, business_key, input, actor) -> tuple[ProcessInstance, list]:
    """Decide the first scheduling in memory, then write it: 3 INSERTs, no UPDATE."""
    spec = _spec_for(definition)
    now = timezone.now()
    process = ProcessInstance(
        definition=definition,
        definition_key=definition.key,
        business_key=business_key,
        variables=dict(input),
        current_stage=spec.stages[0].name,
        started_by=actor.label,
        started_by_user=actor.user if actor.user is not None and actor.user.pk else None,
        unique_ever=spec.business_key_unique == "ever",
        created_at=now,
        updated_at=now,
    )
    tasks = [
        TaskInstance(
            process=process,
            stage=stage.name,
            stage_index=index,
            name=task.name,
            type=task.type,
            handler=task.handler or "",
            task_queue=task.task_queue or "",
            candidate_role=task.assigned_to or "",
            created_at=now,
        )
        for index, stage in enumerate(spec.stages)
        for task in stage.tasks
    ]
    run = _Run(process=process, tasks={t.name: t for t in tasks}, actor=actor)
    events.process_started(process=process, actor=actor, input=input)
    events.stage_started(process=process, actor=actor, stage=process.current_stage)
    _advance(run)
    raw.insert([process])
    raw.insert(tasks)
    run.finish()
    return process, tasks


@transaction.atomic
def process_cancel(*, process_id, actor: Actor, reason: str = "") -> ProcessInstance:
    """Cancel every open task, then run the compensation handlers of completed ones (after commit)."""
    run = _lock(process_id)
    run.actor = actor
    process = run.process
    _transition(process, "cancel")
    for task in run.tasks.values():
        if task.state in (
            TaskState.PENDING,
            TaskState.SCHEDULED,
            TaskState.RUNNING,
            TaskState.FAILED,
        ):
            _transition(task, "cancel")
            run.touch(task)
            events.task_cancelled(process=process, actor=actor, task=task)
    events.process_cancelled(process=process, actor=actor, reason=reason)
    to_compensate = [
        t.pk
        for t in sorted(
            run.tasks.values(), key=lambda t: t.finished_at or process.created_at, reverse=True
        )
        if t.state == TaskState.COMPLETED and run.task_spec(t).compensate
    ]
    run.save()
    if to_compensate:
        process_pk = process.pk
        transaction.on_commit(lambda: _enqueue_compensation(process_pk, to_compensate))
    return process


def _enqueue_compensation(process_id, task_ids: list[int]) -> None:
    from processes import worker

    worker.enqueue_compensation(process_id, task_ids)


def compensation_context(*, task_id) -> tuple[str, StepContext] | None:
    """What a worker needs to run ``task_id``'s compensation handler, or None if it has none."""
    task = TaskInstance.objects.select_related("process", "process__definition").get(pk=task_id)
    task_spec = _spec_for(task.process.definition).task(task.name)
    if not task_spec.compensate:
        return None
    ctx = _step_context(task, task_spec, suffix=":compensate")
    return task_spec.compensate, ctx


@transaction.atomic
def compensation_record(*, task_id, actor: Actor, handler: str, outcome: str) -> None:
    run, task = _lock_for_task(task_id)
    events.compensation_run(
        process=run.process, actor=actor, task=task, handler=handler, outcome=outcome
    )
    run.save()


MAX_REASON = 1000


@transaction.atomic
def process_correct_variables(
    *, process_id, actor: Actor, set: dict | None = None, unset=(), reason: str
) -> ProcessInstance:
    """Correct the variables of an active process: ``set`` maps variable paths ("bonus.amount")
    to new values, ``unset`` lists paths to remove. Needs the ``correct_variables`` grant and a
    reason; recorded as one ``variables_changed`` event with each path's value before and after.
    """
    changes = set if set is not None else {}
    errors: dict[str, list[str]] = {}
    if not isinstance(reason, str) or not reason.strip():
        errors["reason"] = ["a reason is required: it is kept in the history"]
    elif len(reason) > MAX_REASON:
        errors["reason"] = [f"at most {MAX_REASON} characters"]
    if not isinstance(changes, dict):
        errors["set"] = ["must be an object mapping variable paths to values"]
        changes = {}
    if not isinstance(unset, list | tuple) or not all(isinstance(p, str) for p in unset):
        errors["unset"] = ["must be a list of variable paths"]
        unset = ()
    for path in [*changes, *unset]:
        if not spec_module.VAR_PATH_RE.fullmatch(path):
            errors.setdefault(f"set.{path}" if path in changes else "unset", []).append(
                "not a variable path like 'bonus.amount'"
            )
    if not changes and not unset and "set" not in errors:
        errors["set"] = ["name at least one variable to set or unset"]
    if errors:
        raise InvalidInput("the correction is not valid", fields=errors)
    run = _lock(process_id)
    run.actor = actor
    process = run.process
    if actor.user is not None and not authority.has_definition_perm(
        actor.user, authority.CORRECT, process.definition_key
    ):
        raise Forbidden(f"you may not correct variables of {process.definition_key!r} processes")
    if process.state not in ACTIVE_PROCESS_STATES:
        raise Conflict(f"process is {process.state}: its variables are history now")
    variables, diff = spec_module.apply_variable_changes(process.variables, changes, unset)
    if diff is None:
        raise InvalidInput(
            "a path goes through a value that is not an object",
            fields={"set": ["a path goes through a value that is not an object"]},
        )
    if not diff:
        raise InvalidInput("no variable would change", fields={"set": ["no variable would change"]})
    process.variables = variables
    events.variables_changed(process=process, actor=actor, changes=diff, reason=reason.strip())
    run.save()
    return process


# --- service steps (called by workers) ------------------------------------------------------------


def _step_context(task, task_spec, suffix: str = "") -> StepContext:
    return StepContext(
        process_id=str(task.process_id),
        business_key=task.process.business_key,
        definition_key=task.process.definition_key,
        task_id=task.pk,
        task_name=task.name,
        stage=task.stage,
        attempt=task.attempts,
        idempotency_key=task.idempotency_key + suffix,
        variables=dict(task.process.variables),
        config=dict(task_spec.extra),
    )


@dataclass(frozen=True)
class StepLease:
    """A worker's right to run one step: who to call, with what, and until when."""

    task_id: int
    execution: int
    handler: str
    context: StepContext
    timeout: int


@transaction.atomic
def task_start(*, task_id, actor: Actor) -> StepLease | None:
    """Take a scheduled step for a worker; None when there is nothing to run (stale delivery)."""
    run, task = _lock_for_task(task_id)
    run.actor = actor
    now = timezone.now()
    if run.process.state not in ACTIVE_PROCESS_STATES or not task.handler:
        return None
    if task.state == TaskState.RUNNING and task.wake_at and task.wake_at > now:
        return None  # another worker holds a live lease
    if task.state not in (TaskState.SCHEDULED, TaskState.RUNNING):
        return None
    if task.state == TaskState.SCHEDULED and task.scheduled_at and task.scheduled_at > now:
        return None  # still inside its retry back-off; the sweep will enqueue it when due
    task_spec = run.task_spec(task)
    timeout = _step_timeout(task_spec)
    _transition(task, "start")
    task.wake_at = now + dt.timedelta(seconds=timeout + settings.FLOWDESK_LEASE_MARGIN)
    run.touch(task)
    events.task_started(process=run.process, actor=actor, task=task)
    run.save()
    task.process = run.process
    return StepLease(
        task_id=task.pk,
        execution=task.execution,
        handler=task.handler,
        context=_step_context(task, task_spec),
        timeout=timeout,
    )


@transaction.atomic
def task_complete(
    *,
    task_id,
    actor: Actor,
    result: Any = None,
    execution: int | None = None,
) -> TaskInstance:
    """Complete a scheduled or running service task; a repeat is recorded as a duplicate and
    changes nothing. The result lands under the task's own name in the variables, nothing else.

    ``execution`` (from a worker) guards against a late result of an execution replayed since.
    Human tasks are decided by a person (``task_decide``), never completed this way.
    """
    run, task = _lock_for_task(task_id)
    run.actor = actor
    if task.type == TaskType.HUMAN:
        raise Conflict(HUMAN_TASK_REFUSAL)
    if task.state == TaskState.COMPLETED or (execution is not None and execution != task.execution):
        events.task_duplicate(
            process=run.process, actor=actor, task=task, event="TaskCompleted", data=result
        )
        run.save()
        task._duplicate = True
        return task
    if run.process.state not in ACTIVE_PROCESS_STATES:
        raise Conflict(f"process is {run.process.state}")
    _complete(run, task, result)
    _advance(run)
    run.save()
    return task


HUMAN_TASK_REFUSAL = "human tasks are decided in the inbox or through /api/tasks/{id}/complete/"


def _complete(run: _Run, task: TaskInstance, result: Any) -> None:
    _transition(task, "complete")
    task.result = result
    task.last_error = ""
    run.touch(task)
    run.process.variables = {**run.process.variables, task.name: result}
    business_status = run.task_spec(task).business_status
    if business_status:
        run.process.business_status = business_status
    events.task_completed(process=run.process, actor=run.actor, task=task, result=result)


@transaction.atomic
def task_fail(
    *, task_id, actor: Actor, error: str, retryable: bool = True, execution: int | None = None
) -> TaskInstance:
    """Record a failed attempt: retry after back-off while attempts remain, else open an incident."""
    run, task = _lock_for_task(task_id)
    run.actor = actor
    error = (error or "unknown error")[:4000]
    if task.state == TaskState.FAILED or (execution is not None and execution != task.execution):
        events.task_duplicate(process=run.process, actor=actor, task=task, event="TaskFailed")
        run.save()
        task._duplicate = True
        return task
    if task.state not in (TaskState.SCHEDULED, TaskState.RUNNING):
        raise Conflict(f"cannot fail task {task.name!r}: it is {task.state}")
    task_spec = run.task_spec(task)
    task.last_error = error
    run.touch(task)
    if (
        retryable
        and task.handler
        and task.state == TaskState.RUNNING
        and task.attempts < task_spec.retry.max_attempts
    ):
        retry_at = timezone.now() + task_spec.retry.delay_after(task.attempts)
        _transition(task, "retry_later")
        task.scheduled_at = retry_at  # "scheduled for": a worker won't start it earlier
        task.wake_at = retry_at
        events.task_attempt_failed(
            process=run.process, actor=actor, task=task, error=error, retry_at=retry_at
        )
    else:
        _transition(task, "fail")
        events.task_failed(process=run.process, actor=actor, task=task, error=error)
        _after_task_failed_for_good(run, task, error)
    run.save()
    return task


# --- repairs (admin, API, seed's TaskPending) -----------------------------------------------------


@transaction.atomic
def task_retry(*, task_id, actor: Actor, reason: str = "") -> TaskInstance:
    """Schedule a failed task again with a fresh attempt budget; a scheduled one is a duplicate."""
    run, task = _lock_for_task(task_id)
    run.actor = actor
    if task.state == TaskState.SCHEDULED:
        events.task_duplicate(process=run.process, actor=actor, task=task, event="TaskPending")
        run.save()
        task._duplicate = True
        return task
    if run.process.state not in ACTIVE_PROCESS_STATES:
        raise Conflict(f"process is {run.process.state}")
    _transition(task, "retry")
    run.touch(task)
    events.task_retried(process=run.process, actor=actor, task=task, reason=reason)
    if task.handler:
        task.wake_at = timezone.now() + dt.timedelta(seconds=settings.FLOWDESK_REENQUEUE_AFTER)
        run.to_enqueue.append(task)
    _maybe_resolve_incident(run)
    run.save()
    return task


@transaction.atomic
def task_skip(*, task_id, actor: Actor, reason: str) -> TaskInstance:
    """Skip a pending, scheduled or failed task (a person decided it isn't needed)."""
    if not reason or not reason.strip():
        raise InvalidInput("a reason is required to skip a task", fields={"reason": ["required"]})
    run, task = _lock_for_task(task_id)
    run.actor = actor
    if run.process.state not in ACTIVE_PROCESS_STATES:
        raise Conflict(f"process is {run.process.state}")
    _transition(task, "skip")
    run.touch(task)
    events.task_skipped(process=run.process, actor=actor, task=task, reason=reason)
    _maybe_resolve_incident(run)
    _advance(run)
    run.save()
    return task


def _reset(run: _Run, task: TaskInstance, reason: str) -> None:
    if task.state == TaskState.PENDING:
        return
    task.reset()
    run.touch(task)
    events.task_reset(process=run.process, actor=run.actor, task=task, reason=reason)


def _replay_from(run: _Run, stage: str, resets: list[TaskInstance], reason: str) -> None:
    process = run.process
    if process.state == ProcessState.CANCELLED:
        raise Conflict("a cancelled process cannot be replayed")
    for task in resets:
        _reset(run, task, reason)
    if process.state == ProcessState.COMPLETED:
        _transition(process, "reopen")
        events.process_reopened(process=process, actor=run.actor, reason=reason, stage=stage)
    elif process.current_stage != stage:
        events.process_reopened(process=process, actor=run.actor, reason=reason, stage=stage)
    process.current_stage = stage
    _maybe_resolve_incident(run)
    _advance(run)


@transaction.atomic
def stage_replay(*, process_id, stage: str, actor: Actor, reason: str = "") -> ProcessInstance:
    """Run ``stage`` and every later stage again (the seed's "replay events for a stage")."""
    run = _lock(process_id)
    run.actor = actor
    try:
        index = run.spec.stage_index(stage)
    except ValueError:
        raise NotFound(f"unknown stage {stage!r}") from None
    resets = [t for t in run.tasks.values() if t.stage_index >= index]
    _replay_from(run, stage, resets, reason or f"replay stage {stage}")
    run.save()
    return run.process


@transaction.atomic
def task_replay(*, task_id, actor: Actor, reason: str = "") -> TaskInstance:
    """Run one task again, with what depends on it in its stage and every later stage."""
    run, task = _lock_for_task(task_id)
    run.actor = actor
    downstream = {task.name}
    stage_tasks = _stage_tasks(run, task.stage)
    grew = True
    while grew:
        grew = False
        for other in stage_tasks:
            if other.name not in downstream and downstream & set(run.task_spec(other).parents):
                downstream.add(other.name)
                grew = True
    resets = [
        t for t in run.tasks.values() if t.name in downstream or t.stage_index > task.stage_index
    ]
    _replay_from(run, task.stage, resets, reason or f"replay task {task.name}")
    run.save()
    return task


# --- human tasks ----------------------------------------------------------------------------------
#
# Who may claim, decide, delegate or release is ``authority.task_rights``: checked here, inside
# the transaction that changes the task, so no adapter can go around it.


def _open_human(run: _Run, task: TaskInstance) -> None:
    if task.type != TaskType.HUMAN:
        raise Conflict(f"task {task.name!r} is not a human task")
    if task.state != TaskState.SCHEDULED or run.process.state not in ACTIVE_PROCESS_STATES:
        decided = f" by {task.decided_by.get_username()}" if task.decided_by_id else ""
        raise Conflict(f"task {task.name!r} is already {task.state}{decided}")


def _rights(run: _Run, task: TaskInstance, actor: Actor) -> authority.TaskRights:
    if actor.user is None:
        return authority.NOTHING
    return authority.task_rights(
        actor.user, task, process=run.process, spec=run.spec, tasks=run.tasks
    )


def _refuse(rights: authority.TaskRights, task: TaskInstance, action: str):
    """The error telling a person why they may not ``action`` the task (404 if they can't see it)."""
    if not rights.see:
        return NotFound(f"task {task.pk} not found")
    if rights.refusal:
        return Forbidden(rights.refusal)
    if task.claimed_by_id:
        return Conflict(f"task is claimed by {task.claimed_by.get_username()}")
    if task.assignee_id:
        return Forbidden(
            f"task is assigned to {task.assignee.get_username()}: only they may {action} it"
        )
    return Forbidden(f"you may not {action} this task: it is for the role {task.candidate_role}")


@transaction.atomic
def task_claim(*, task_id, actor: Actor) -> TaskInstance:
    """Lock an unheld human task to the actor; claiming what one holds already changes nothing."""
    run, task = _lock_for_task(task_id)
    run.actor = actor
    _open_human(run, task)
    if actor.user is not None and authority.holder_id(task) == actor.user.pk:
        return task
    rights = _rights(run, task, actor)
    if not rights.claim:
        raise _refuse(rights, task, "claim")
    task.claimed_by = actor.user
    _add_participant(task, actor.user.pk)
    run.touch(task)
    events.task_claimed(process=run.process, actor=actor, task=task)
    run.save()
    return task


@transaction.atomic
def task_release(*, task_id, actor: Actor) -> TaskInstance:
    """Return a claimed task to its role: its claimant, or an operator of the definition."""
    run, task = _lock_for_task(task_id)
    run.actor = actor
    _open_human(run, task)
    if not task.claimed_by_id:
        return task
    rights = _rights(run, task, actor)
    if not rights.release and not (
        actor.user is not None
        and authority.has_definition_perm(actor.user, authority.OPERATE, run.process.definition_key)
    ):
        raise _refuse(rights, task, "release")
    task.claimed_by = None
    run.touch(task)
    events.task_released(process=run.process, actor=actor, task=task)
    run.save()
    return task


@transaction.atomic
def task_delegate(*, task_id, actor: Actor, to_user, comment: str = "") -> TaskInstance:
    """Hand the task over to another person of its role: they hold it, the delegator no longer
    decides it."""
    run, task = _lock_for_task(task_id)
    run.actor = actor
    _open_human(run, task)
    rights = _rights(run, task, actor)
    if not rights.delegate:
        raise _refuse(rights, task, "delegate")
    if to_user is None or not to_user.is_active:
        raise InvalidInput("unknown user", fields={"to": ["unknown or inactive user"]})
    if to_user.pk == actor.user.pk:
        raise InvalidInput("choose someone else", fields={"to": ["you hold this task already"]})
    if task.candidate_role and task.candidate_role not in authority.roles_of(to_user):
        raise InvalidInput(
            f"{to_user.get_username()} is not a member of {task.candidate_role}",
            fields={"to": [f"must be a member of {task.candidate_role}"]},
        )
    barred = authority.separation_refusal(
        to_user, task, process=run.process, spec=run.spec, tasks=run.tasks, person=to_user
    )
    if barred:
        raise InvalidInput(barred, fields={"to": [barred]})
    task.assignee = to_user
    task.claimed_by = None
    _add_participant(task, actor.user.pk)
    _add_participant(task, to_user.pk)
    run.touch(task)
    events.task_delegated(
        process=run.process, actor=actor, task=task, to_user=to_user, comment=comment
    )
    run.save()
    return task


def task_decide(
    *,
    task_id,
    actor: Actor,
    decision: str | None = None,
    comment: str = "",
    data: dict | None = None,
    via_event: bool = False,
) -> TaskInstance:
    """A person completes a human task with an outcome; a closed task raises ``Conflict``.

    Only the person ``authority.task_rights`` allows may decide. ``via_event``: a seed
    ``TaskCompleted`` from an outside system, accepted only for tasks whose spec says
    ``external_decision`` (separation of duties still applies to the calling client).
    The losing side of two simultaneous decisions gets a Conflict naming who decided; the attempt
    is still recorded in the history (as a duplicate event, committed before the error is raised).
    """
    with transaction.atomic():
        run, task = _lock_for_task(task_id)
        run.actor = actor
        if via_event and not (
            task.type == TaskType.HUMAN and run.task_spec(task).external_decision
        ):
            raise Conflict(HUMAN_TASK_REFUSAL)
        if task.type == TaskType.HUMAN and task.state != TaskState.SCHEDULED:
            if not via_event and not _rights(run, task, actor).see:
                raise NotFound(f"task {task.pk} not found")
            events.task_duplicate(
                process=run.process,
                actor=actor,
                task=task,
                event="decision",
                data={"decision": decision, "comment": comment},
            )
            run.save()
            conflict = Conflict(
                f"task {task.name!r} is already {task.state}"
                + (f" by {task.decided_by.get_username()}" if task.decided_by_id else "")
            )
        else:
            conflict = None
            _open_human(run, task)
            user = actor.user
            if via_event:
                refusal = user and authority.separation_refusal(
                    user, task, process=run.process, spec=run.spec, tasks=run.tasks
                )
                if refusal:
                    raise Forbidden(refusal)
            else:
                rights = _rights(run, task, actor)
                if not rights.decide:
                    raise _refuse(rights, task, "decide")
            clean, errors = spec_module.validate_decision(run.task_spec(task), decision, data)
            if comment is not None and not isinstance(comment, str):
                errors["comment"] = ["must be text"]
            if errors:
                raise InvalidInput("the decision is not valid", fields=errors)
            task.decided_by = user
            result = {**clean, "comment": comment or ""}
            if decision not in (None, ""):
                result["decision"] = decision
            result["decided_by"] = user.get_username() if user is not None else actor.label
            if user is not None:
                _add_participant(task, user.pk)
            _complete(run, task, result)
            _advance(run)
            run.save()
    if conflict is not None:
        raise conflict
    return task


# --- timers ---------------------------------------------------------------------------------------


@transaction.atomic
def task_wake(*, task_id, now=None) -> str:
    """Act on a task whose timer is due: re-enqueue, reclaim a lost lease, or escalate."""
    now = now or timezone.now()
    run, task = _lock_for_task(task_id)
    run.actor = Actor.system("timer sweep")
    if task.wake_at is None or task.wake_at > now:
        return "not due"
    if run.process.state not in ACTIVE_PROCESS_STATES:
        task.wake_at = None
        run.touch(task)
        run.save()
        return "inactive"
    outcome = "cleared"
    if task.state == TaskState.SCHEDULED and task.handler:
        task.wake_at = now + dt.timedelta(seconds=settings.FLOWDESK_REENQUEUE_AFTER)
        run.to_enqueue.append(task)
        outcome = "enqueued"
    elif task.state == TaskState.RUNNING:
        task_spec = run.task_spec(task)
        if task.attempts >= task_spec.retry.max_attempts + MAX_LOST_LEASES:
            error = f"worker lost {task.attempts} times (lease expired)"
            task.last_error = error
            _transition(task, "fail")
            events.task_failed(process=run.process, actor=run.actor, task=task, error=error)
            _after_task_failed_for_good(run, task, error)
            outcome = "failed"
        else:
            _transition(task, "requeue")
            task.wake_at = now + dt.timedelta(seconds=settings.FLOWDESK_REENQUEUE_AFTER)
            events.task_requeued(process=run.process, actor=run.actor, task=task)
            run.to_enqueue.append(task)
            outcome = "requeued"
    elif task.state == TaskState.SCHEDULED and task.type == TaskType.HUMAN:
        outcome = _escalate(run, task, now)
    else:
        task.wake_at = None
    run.touch(task)
    run.save()
    return outcome


def _escalate(run: _Run, task: TaskInstance, now) -> str:
    escalation = run.task_spec(task).escalation
    task.wake_at = None
    if escalation is None or task.escalated_at is not None:
        return "cleared"
    from_role = task.candidate_role
    task.escalated_at = now
    if escalation.to_role:
        task.candidate_role = escalation.to_role
        task.assignee = None
        task.claimed_by = None
    events.task_escalated(
        process=run.process,
        actor=run.actor,
        task=task,
        from_role=from_role,
        to_role=task.candidate_role,
    )
    if escalation.notify:
        task_pk, to_role = task.pk, escalation.to_role

        def notify() -> None:
            from tasks_inbox import notifications

            try:
                notifications.task_escalated(task_id=task_pk, from_role=from_role, to_role=to_role)
            except Exception:
                logger.exception("escalation notice for task %s failed", task_pk)

        run.after_commit.append(notify)
    return "escalated"


# --- the seed's event protocol --------------------------------------------------------------------

SEED_EVENTS = ("StartWorkflow", "TaskCompleted", "TaskFailed", "TaskPending")


@dataclass(frozen=True)
class EventOutcome:
    process: ProcessInstance
    task: TaskInstance | None
    created: bool = False
    duplicate: bool = False


def handle_seed_event(
    *,
    event_name: str,
    business_ref_no: str,
    actor: Actor,
    component_name: str | None = None,
    definition_key: str | None = None,
    stage_name: str | None = None,
    task_name: str | None = None,
    task_type: str | None = None,
    data: dict | None = None,
    error: str | None = None,
) -> EventOutcome:
    """Apply one of the seed's events (StartWorkflow, TaskCompleted, TaskFailed, TaskPending).

    A task's ``data`` becomes its result, under its own name in the variables. Human tasks are
    refused unless their spec says ``external_decision`` (then ``data`` carries the decision,
    checked like the inbox's). An event that doesn't fit the task's state raises ``Conflict``
    and is recorded in the history as a rejected ``task_duplicate``.
    """
    if event_name not in SEED_EVENTS:
        raise InvalidInput(
            f"unknown event_name {event_name!r}",
            fields={"event_name": [f"must be one of: {', '.join(SEED_EVENTS)}"]},
        )
    if data is not None and not isinstance(data, dict):
        raise InvalidInput("data must be a JSON object", fields={"data": ["must be an object"]})
    if event_name == "StartWorkflow":
        started = process_start(
            definition_key=definition_key,
            component_name=component_name,
            business_key=business_ref_no,
            input=data or {},
            actor=actor,
        )
        return EventOutcome(started.process, None, created=started.created)
    definition = find_definition(key=definition_key, component_name=component_name)
    process = (
        ProcessInstance.objects.filter(definition_key=definition.key, business_key=business_ref_no)
        .order_by("-created_at")
        .first()
    )
    if process is None:
        raise NotFound(f"no process {business_ref_no!r} of {definition.key!r}")
    if not task_name:
        raise InvalidInput("task_name is required", fields={"task_name": ["required"]})
    task = TaskInstance.objects.filter(process=process, name=task_name).first()
    if task is None:
        raise NotFound(f"process {business_ref_no!r} has no task {task_name!r}")
    if stage_name and stage_name != task.stage:
        raise InvalidInput(
            f"task {task_name!r} is in stage {task.stage!r}, not {stage_name!r}",
            fields={"stage_name": [f"task {task_name!r} is in stage {task.stage!r}"]},
        )
    if task_type and task_type != task.type:
        raise InvalidInput(
            f"task {task.name!r} is {task.type}, not {task_type}",
            fields={"task_type": [f"task {task.name!r} is {task.type}"]},
        )
    human = task.type == TaskType.HUMAN
    if human and not _spec_for(process.definition).task(task.name).external_decision:
        raise Conflict(HUMAN_TASK_REFUSAL)  # refused before anything is recorded
    try:
        if event_name == "TaskCompleted" and human:
            fields = dict(data or {})
            task = task_decide(
                task_id=task.pk,
                actor=actor,
                decision=fields.pop("decision", None),
                comment=fields.pop("comment", ""),
                data=fields,
                via_event=True,
            )
        elif event_name == "TaskCompleted":
            task = task_complete(task_id=task.pk, actor=actor, result=data or {})
        elif event_name == "TaskFailed":
            task = task_fail(
                task_id=task.pk,
                actor=actor,
                error=error or "reported failed by an external task",
                retryable=False,
            )
        else:
            task = task_retry(task_id=task.pk, actor=actor, reason="TaskPending")
    except Conflict as exc:
        if not (human and event_name == "TaskCompleted"):  # a late decision is recorded already
            task_event_rejected(
                task_id=task.pk, actor=actor, event=event_name, reason=exc.message, data=data
            )
        raise
    process.refresh_from_db()
    return EventOutcome(process, task, duplicate=getattr(task, "_duplicate", False))


# --- rejected events (API) ------------------------------------------------------------------------


@transaction.atomic
def task_event_rejected(*, task_id, actor: Actor, event: str, reason: str, data=None) -> None:
    """Record an event that did not fit the task's state (out of order); nothing else changes.

    The caller answers 409; the history keeps the attempt as a ``task_duplicate`` event.
    """
    run, task = _lock_for_task(task_id)
    events.task_duplicate(
        process=run.process,
        actor=actor,
        task=task,
        event=event,
        data={"rejected": reason, "data": data},
    )
    run.save()


# --- notifications (inbox notices, SMS alerts) ---------------------------------------------------


@transaction.atomic
def notification_record(
    *,
    actor: Actor,
    channel: str,
    recipients,
    process_id=None,
    task_id=None,
    message: str = "",
    error: str | None = None,
    reminder: bool = False,
) -> None:
    """Record in the history that people were told about a process or task, or could not be.

    ``error`` set: ``notification_failed``; a ``reminder`` of an overdue human task:
    ``task_reminded``; else ``notification_sent``. Give ``process_id``, ``task_id`` or both.
    """
    if process_id is None:
        run, task = _lock_for_task(task_id)
    else:
        run = _lock(process_id)
        task = next((t for t in run.tasks.values() if t.pk == task_id), None)
    recipients = list(recipients)
    if error:
        events.notification_failed(
            process=run.process,
            actor=actor,
            task=task,
            channel=channel,
            error=error[:2000],
            recipients=recipients,
        )
    elif reminder:
        events.task_reminded(process=run.process, actor=actor, task=task, recipients=recipients)
    else:
        events.notification_sent(
            process=run.process,
            actor=actor,
            task=task,
            channel=channel,
            recipients=recipients,
            message=message,
        )
    run.save()
