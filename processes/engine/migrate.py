"""Moving running instances to another version of their definition (Camunda's process instance
migration): a plan first, then one instance per transaction.

The mapping names, for each task of the source version, the task of the target version it
becomes (``None``: dropped); a task not named maps to the target task of the same name, if any.
Per instance the plan says which tasks map (with their state), which are dropped, which target
tasks are new, and which would become ready; or why that instance can't move. Applying locks
the instance row, computes its plan again from what it is now (a step may have finished since
the plan was shown), and refuses it if it has become impossible.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from processes import authority, events
from processes.db import core
from processes.engine._run import _advance, _lock, _Run, _spec_for
from processes.errors import Conflict, Forbidden, InvalidInput
from processes.events import Actor
from processes.models import (
    ACTIVE_PROCESS_STATES,
    DONE_TASK_STATES,
    DefinitionStatus,
    ProcessDefinition,
    ProcessEvent,
    ProcessInstance,
    TaskInstance,
    TaskState,
)

logger = logging.getLogger(__name__)

MAX_INSTANCES = 1000


@dataclass
class InstancePlan:
    """What migrating one instance would do, or why it can't (``refusal``)."""

    process_id: object
    business_key: str
    state: str
    refusal: str = ""
    mapped: list[dict] = field(default_factory=list)  # {from, to, state}
    dropped: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    ready: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refusal

    def as_dict(self) -> dict:
        return {
            "process": str(self.process_id),
            "business_key": self.business_key,
            "state": self.state,
            "ok": self.ok,
            "refusal": self.refusal,
            "mapped": self.mapped,
            "dropped": self.dropped,
            "added": self.added,
            "ready": self.ready,
        }


def check_mapping(
    source: ProcessDefinition, target: ProcessDefinition, mapping
) -> dict[str, str | None]:
    """The full mapping source task -> target task (or None), or ``InvalidInput`` by field."""
    if source.key != target.key:
        raise InvalidInput(
            "both versions must be of one definition",
            fields={"to_version": ["must be a version of the same definition"]},
        )
    if target.status != DefinitionStatus.PUBLISHED:
        raise InvalidInput(
            f"{target} is {target.status}", fields={"to_version": ["must be a published version"]}
        )
    if source.pk == target.pk:
        raise InvalidInput("nothing to migrate", fields={"to_version": ["must differ"]})
    mapping = mapping or {}
    if not isinstance(mapping, dict):
        raise InvalidInput("mapping must be an object", fields={"mapping": ["must be an object"]})
    old = [t.name for t in _spec_for(source).tasks]
    new = {t.name for t in _spec_for(target).tasks}
    errors: dict[str, list[str]] = {}
    for name, to in mapping.items():
        if name not in old:
            errors[f"mapping.{name}"] = [f"no task {name!r} in version {source.version}"]
        elif to is not None and (not isinstance(to, str) or to not in new):
            errors[f"mapping.{name}"] = [f"no task {to!r} in version {target.version}"]
    full = {name: mapping.get(name, name if name in new else None) for name in old}
    seen: dict[str, str] = {}
    for name, to in full.items():
        if to is None:
            continue
        if to in seen:
            errors[f"mapping.{name}"] = [f"{to!r} is already the target of {seen[to]!r}"]
        seen[to] = name
    if errors:
        raise InvalidInput("the task mapping is not valid", fields=errors)
    return full


def plan_instance(process, tasks, target: ProcessDefinition, full: dict) -> InstancePlan:
    """The plan of one instance (``tasks``: its rows), computed without writing anything."""
    plan = InstancePlan(process.pk, process.business_key, process.state)
    if process.state not in ACTIVE_PROCESS_STATES:
        plan.refusal = f"the process is {process.state}"
        return plan
    spec = _spec_for(target)
    stage_names = [s.name for s in spec.stages]
    if process.current_stage not in stage_names:
        plan.refusal = f"its stage {process.current_stage!r} is not in version {target.version}"
        return plan
    with_history = _tasks_with_history(process, tasks)
    states: dict[str, str] = {}
    for task in tasks:
        to = full.get(task.name)
        if task.state == TaskState.RUNNING:
            plan.refusal = f"step {task.name!r} is running: migrate once it has finished"
            return plan
        if to is None:
            if task.state != TaskState.PENDING or task.pk in with_history:
                plan.refusal = (
                    f"task {task.name!r} ({task.state}) would be dropped but has a history: "
                    f"map it to a task of version {target.version}"
                )
                return plan
            plan.dropped.append(task.name)
            continue
        target_spec = spec.task(to)
        if task.state != TaskState.PENDING and target_spec.type != task.type:
            plan.refusal = (
                f"task {task.name!r} is {task.state}: it can't become {target_spec.type} "
                f"task {to!r}"
            )
            return plan
        plan.mapped.append({"from": task.name, "to": to, "state": task.state})
        states[to] = task.state
    for task_spec in spec.tasks:
        if task_spec.name not in states:
            plan.added.append(task_spec.name)
            states[task_spec.name] = TaskState.PENDING
    stage = spec.stage(process.current_stage)
    for task_spec in stage.tasks:
        if states[task_spec.name] == TaskState.PENDING and all(
            states.get(p) in DONE_TASK_STATES for p in task_spec.parents
        ):
            plan.ready.append(task_spec.name)
    return plan


def _tasks_with_history(process, tasks) -> set[int]:
    pending = [t.pk for t in tasks if t.state == TaskState.PENDING]
    if not pending:
        return set()
    return set(
        ProcessEvent.objects.filter(process=process, task_id__in=pending).values_list(
            "task_id", flat=True
        )
    )


def _versions(key: str, from_version, to_version) -> tuple[ProcessDefinition, ProcessDefinition]:
    found = {
        d.version: d
        for d in ProcessDefinition.objects.filter(key=key, version__in=[from_version, to_version])
    }
    errors = {}
    for name, version in (("from_version", from_version), ("to_version", to_version)):
        if version not in found:
            errors[name] = [f"no version {version} of {key!r}"]
    if errors:
        raise InvalidInput("unknown version", fields=errors)
    return found[from_version], found[to_version]


def _require(actor: Actor, key: str) -> None:
    if actor.user is not None and not authority.may_migrate(actor.user, key):
        raise Forbidden(f"you may not migrate instances of {key!r}")


def migration_plan(
    *, key: str, from_version: int, to_version: int, mapping=None, instance_ids=None, actor: Actor
) -> list[InstancePlan]:
    """The plan for the chosen active instances of ``from_version`` (all of them when
    ``instance_ids`` is None, at most ``MAX_INSTANCES``); writes nothing."""
    _require(actor, key)
    source, target = _versions(key, from_version, to_version)
    full = check_mapping(source, target, mapping)
    processes = ProcessInstance.objects.filter(definition=source)
    if instance_ids is not None:
        processes = ProcessInstance.objects.filter(definition_key=key, pk__in=list(instance_ids))
    else:
        processes = processes.filter(state__in=ACTIVE_PROCESS_STATES)
    processes = list(processes.order_by("created_at")[: MAX_INSTANCES + 1])
    if len(processes) > MAX_INSTANCES:
        raise InvalidInput(
            f"at most {MAX_INSTANCES} instances at once",
            fields={"instances": [f"at most {MAX_INSTANCES} instances at once"]},
        )
    tasks: dict = {}
    for task in TaskInstance.objects.filter(process__in=processes).order_by("stage_index", "id"):
        tasks.setdefault(task.process_id, []).append(task)
    plans = []
    for process in processes:
        if process.definition_id != source.pk:
            plan = InstancePlan(process.pk, process.business_key, process.state)
            plan.refusal = f"it runs version {process.definition.version}, not {from_version}"
            plans.append(plan)
            continue
        plans.append(plan_instance(process, tasks.get(process.pk, []), target, full))
    return plans


def process_migrate(
    *, process_id, key: str, from_version: int, to_version: int, mapping=None, actor: Actor
) -> InstancePlan:
    """Move one instance from ``from_version`` to ``to_version`` in one transaction, its row
    locked; ``Conflict`` when its plan (computed again under the lock) refuses it."""
    _require(actor, key)
    source, target = _versions(key, from_version, to_version)
    full = check_mapping(source, target, mapping)
    with transaction.atomic():
        run = _lock(process_id)
        run.actor = actor
        process = run.process
        if process.definition_key != key or process.definition_id != source.pk:
            raise Conflict(f"process {process_id} does not run {key} v{from_version}")
        tasks = sorted(run.tasks.values(), key=lambda t: (t.stage_index, t.pk))
        plan = plan_instance(process, tasks, target, full)
        if not plan.ok:
            raise Conflict(f"{process.business_key}: {plan.refusal}")
        _apply(run, tasks, target, full, plan, source)
    return plan


def _apply(run: _Run, tasks, target, full, plan, source) -> None:
    process = run.process
    spec = _spec_for(target)
    stage_index = {s.name: i for i, s in enumerate(spec.stages)}
    dropped = [t for t in tasks if full.get(t.name) is None]
    if dropped:
        TaskInstance.objects.filter(pk__in=[t.pk for t in dropped]).delete()
    moved = [t for t in tasks if full.get(t.name) is not None]
    targets = {t.pk: full[t.name] for t in moved}
    # Free the names first: a task may take the name another one leaves (unique per process).
    for task in moved:
        if task.name != targets[task.pk]:
            task.name = f"~{task.pk}"
            core.update_row(task, ["name"])
    for task in moved:
        task_spec = spec.task(targets[task.pk])
        task.name = task_spec.name
        task.stage = task_spec.stage
        task.stage_index = stage_index[task_spec.stage]
        task.type = task_spec.type
        task.handler = task_spec.handler or ""
        task.task_queue = task_spec.task_queue or ""
        core.update_row(task, ["name", "stage", "stage_index", "type", "handler", "task_queue"])
    now = timezone.now()
    added = [
        TaskInstance(
            process=process,
            definition_key=process.definition_key,
            stage=t.stage,
            stage_index=stage_index[t.stage],
            name=t.name,
            type=t.type,
            handler=t.handler or "",
            task_queue=t.task_queue or "",
            candidate_role=t.assigned_to or "",
            created_at=now,
        )
        for t in spec.tasks
        if t.name in plan.added
    ]
    core.create_rows(added)
    process.definition = target
    core.update_row(process, ["definition"])
    run.tasks = {t.name: t for t in [*moved, *added]}
    events.process_migrated(
        log=run.log,
        actor=run.actor,
        from_version=source.version,
        to_version=target.version,
        mapping={m["from"]: m["to"] for m in plan.mapped},
        dropped=plan.dropped,
        added=plan.added,
    )
    _advance(run)
    run.save()


def migrate_instances(
    *,
    key: str,
    from_version: int,
    to_version: int,
    mapping=None,
    instance_ids=None,
    actor: Actor,
    dry_run: bool = False,
) -> list[tuple[InstancePlan, bool]]:
    """Plan, then (unless ``dry_run``) apply to each instance the plan allows, one transaction
    each. Returns (plan, migrated) per instance; an instance refused when applied (it changed
    since the plan) has its plan's ``refusal`` set to why."""
    plans = migration_plan(
        key=key,
        from_version=from_version,
        to_version=to_version,
        mapping=mapping,
        instance_ids=instance_ids,
        actor=actor,
    )
    done = []
    for plan in plans:
        if dry_run or not plan.ok:
            done.append((plan, False))
            continue
        try:
            applied = process_migrate(
                process_id=plan.process_id,
                key=key,
                from_version=from_version,
                to_version=to_version,
                mapping=mapping,
                actor=actor,
            )
        except Conflict as exc:
            plan.refusal = str(exc)
            done.append((plan, False))
        else:
            done.append((applied, True))
    return done
