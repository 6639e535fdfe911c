"""Within a stage, ``parent_task`` names tasks of the same stage and draws no cycle."""

from __future__ import annotations

from processes.spec.fields import _Collector
from processes.spec.types import TaskSpec


def check_parents(
    c: _Collector, tasks: list[TaskSpec], spath: str, all_names: dict[str, str]
) -> None:
    """Parents must be tasks of the same stage, and the parent graph must have no cycle."""
    in_stage = {t.name: i for i, t in enumerate(tasks)}
    for i, task in enumerate(tasks):
        for parent in task.parents:
            if parent == task.name:
                c.add(f"{spath}.tasks[{i}].parent_task", f"task {task.name!r} is its own parent")
            elif parent not in in_stage:
                where = " (it is in another stage)" if parent in all_names else ""
                c.add(f"{spath}.tasks[{i}].parent_task", f"unknown task {parent!r}{where}")
    # Kahn's algorithm: whatever is left unsorted sits on a cycle.
    remaining = {t.name: {p for p in t.parents if p in in_stage and p != t.name} for t in tasks}
    while True:
        free = [n for n, ps in remaining.items() if not ps]
        if not free:
            break
        for n in free:
            del remaining[n]
        for ps in remaining.values():
            ps.difference_update(free)
    if remaining:
        names = sorted(remaining)
        first = in_stage[names[0]]
        c.add(f"{spath}.tasks[{first}].parent_task", f"cycle between tasks {', '.join(names)}")
