"""The incident center of one instance: what failed, since when, what it will do next, and what a
repair does to the tasks that depend on it (read from the spec, never guessed from code)."""

from __future__ import annotations

from dataclasses import dataclass, field

from processes.models import TaskInstance, TaskState, TaskType


@dataclass
class Incident:
    """A failed task, or one waiting in back-off before its next try."""

    task: TaskInstance
    label: str
    failed: bool  # for good (an incident) or only a try (retried automatically)
    since: object = None
    next_try: object = None
    actions: list[str] = field(default_factory=list)


def incidents(process, tasks, spec, actions_of) -> list[Incident]:
    found = []
    for task in tasks:
        if task.type == TaskType.HUMAN or not task.last_error:
            continue
        task_spec = spec.task(task.name)
        label = (task_spec.label if task_spec else "") or task.name
        if task.state == TaskState.FAILED:
            found.append(
                Incident(
                    task, label, True, task.finished_at or task.started_at, None, actions_of(task)
                )
            )
        elif task.state == TaskState.SCHEDULED and task.attempts:
            found.append(
                Incident(task, label, False, task.started_at, task.wake_at, actions_of(task))
            )
    return found


def _condition_vars(condition) -> set[str]:
    found: set[str] = set()
    if isinstance(condition, dict):
        if isinstance(condition.get("var"), str):
            found.add(condition["var"])
        for value in condition.values():
            found |= _condition_vars(value)
    elif isinstance(condition, list):
        for value in condition:
            found |= _condition_vars(value)
    return found


def declared_reads(task_spec) -> set[str]:
    """The variable paths a task's spec says it reads: its condition, summary, ``show``,
    assignee and separation-of-duties variables."""
    paths = _condition_vars(task_spec.condition)
    for item in task_spec.summary:
        paths.add(item.var)
        if item.currency_var:
            paths.add(item.currency_var)
    paths.update(task_spec.show or ())
    paths.update(task_spec.not_by_var)
    if task_spec.assignee:
        paths.add(task_spec.assignee)
    return paths


@dataclass(frozen=True)
class Dependant:
    name: str
    label: str
    reads: tuple[str, ...]  # paths under the skipped task's results it reads ("bonus.amount")


def dependants(spec, task_name: str) -> list[Dependant]:
    """The tasks that run after ``task_name`` (its children and every later stage), with the
    paths of its results each one reads."""
    stages = list(spec.stages)
    index = next(
        (i for i, s in enumerate(stages) if any(t.name == task_name for t in s.tasks)), None
    )
    if index is None:
        return []
    result = []
    for i, stage in enumerate(stages):
        for task in stage.tasks:
            after = i > index or (i == index and task_name in task.parents)
            if not after:
                continue
            reads = sorted(
                p for p in declared_reads(task) if p == task_name or p.startswith(task_name + ".")
            )
            result.append(Dependant(task.name, task.label or task.name, tuple(reads)))
    return result


def paths_to_set(deps: list[Dependant], variables: dict) -> list[str]:
    """The result paths later tasks read that the process does not have (what a skip leaves
    missing), most specific first; a whole-result path only when nothing more precise is read."""
    from processes import spec as spec_module

    paths = sorted({p for d in deps for p in d.reads})
    leaves = [p for p in paths if not any(q.startswith(p + ".") for q in paths)]
    return [p for p in leaves if spec_module.lookup(variables or {}, p) is spec_module.MISSING]
