"""Monitoring figures for one process definition.

The task figures are read from ``TaskExecution``, the projection of the event log kept by
``processes.projections``: one row per completed task execution with its times, its durations
and its share of the heat map, each worked out there and only there. The projection is caught up
just before the figures are read, so they are those of every event committed by then. For every
task execution completed among the instances started in the window:

- **lead time**: from its last ``task_scheduled`` to its ``task_completed`` (queueing, retries,
  incidents and people included);
- **run time**: from its last ``task_started`` (after that scheduling) to ``task_completed``
  (service tasks: the successful attempt);
- **waiting for people**: the lead time of HUMAN tasks.

PostgreSQL aggregates the rows itself (``processes.db.dashboard``: ``percentile_cont``);
elsewhere ``aggregate_in_python`` does, with ``percentile`` (the same linear interpolation
between the closest ranks, like numpy's default). The heat map adds up each execution's hours.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import Count, Exists, OuterRef, Subquery
from django.utils import timezone

from processes import projections
from processes.db import dashboard as sql
from processes.models import (
    ProcessDefinition,
    ProcessInstance,
    ProcessState,
    TaskExecution,
    TaskInstance,
    TaskState,
    TaskType,
    overdue_q,
)
from processes.projections import Heat, add_heat, heat_pieces

LIST_LIMIT = 20
BREACH_COUNT_CAP = 1000
# A page catches the projection up CATCH_UP_BATCH event ids at a time for CATCH_UP_SECONDS at
# most (then it finishes the batch it is in): with the schedule running, a minute of events takes
# a second or two. Further behind (the schedule stopped for long, a first back-fill), the page
# shows no task figures rather than partial ones.
CATCH_UP_SECONDS = 5.0
CATCH_UP_BATCH = 20_000


def percentile(values: list[float], p: float) -> float | None:
    """Linear interpolation between closest ranks; ``p`` in [0, 100]."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class TaskFigures:
    name: str
    stage: str
    type: str
    completed: int = 0
    lead_p50: float | None = None
    lead_p95: float | None = None
    run_p50: float | None = None
    run_p95: float | None = None
    waiting_p50: float | None = None
    waiting_p95: float | None = None
    waiting_total: float = 0.0
    hours: list[float] = field(default_factory=lambda: [0.0] * 24)

    @property
    def is_human(self) -> bool:
        return self.type == TaskType.HUMAN


@dataclass
class Dashboard:
    key: str
    versions: list[ProcessDefinition]
    since: dt.datetime
    by_state: dict[str, int]
    by_version: list[tuple[int, dict[str, int]]]
    tasks: list[TaskFigures]
    incidents: list[ProcessInstance]
    incident_count: int
    breaches: list[TaskInstance]
    breach_count: int
    behind: int = 0  # event ids still to project when the page stopped waiting (then no tasks)

    @property
    def total(self) -> int:
        return sum(self.by_state.values())

    @property
    def heat_max(self) -> float:
        return max((h for t in self.tasks for h in t.hours), default=0.0)


HEAT_FIELDS = [f"heat_{piece}" for piece in Heat._fields]


def task_figures(key: str, since: dt.datetime, spec=None, in_database=None) -> list[TaskFigures]:
    """Figures per task of the projected executions of ``key``'s instances started since
    ``since``, in the spec's order; PostgreSQL aggregates them itself, other databases here."""
    if in_database is None:
        in_database = connection.vendor == "postgresql"
    aggregate = aggregate_in_database if in_database else aggregate_in_python
    return _figures(spec, *aggregate(key, since))


def aggregate_in_database(key: str, since: dt.datetime) -> tuple[dict, dict]:
    """(stats per task, heat map per task) from ``db.dashboard.task_aggregates``."""
    stats: dict = {}
    hours: dict = defaultdict(lambda: [0.0] * 24)
    for kind, name, a, b, c, d, e, f, g in sql.task_aggregates(key=key, since=since):
        if kind == "stats":
            stats[name] = (int(a), b, c, d, e, float(f or 0))
            add_heat(hours[name], Heat(days=int(g or 0)))
        elif kind == "first":
            add_heat(hours[name], Heat(first_hour=int(a), first_seconds=b))
        elif kind == "last":
            add_heat(hours[name], Heat(last_hour=int(a), last_seconds=b))
        else:
            add_heat(hours[name], Heat(full_hour=int(a), full_hours=int(b)), count=int(c))
    return stats, hours


def aggregate_in_python(key: str, since: dt.datetime) -> tuple[dict, dict]:
    """The twin of ``aggregate_in_database``, over the projected rows."""
    lead: dict[str, list[float]] = defaultdict(list)
    run: dict[str, list[float]] = defaultdict(list)
    hours: dict = defaultdict(lambda: [0.0] * 24)
    rows = (
        TaskExecution.objects.filter(definition_key=key, process_created_at__gte=since)
        .order_by()
        .values_list(
            "task_name", "lead_seconds", "run_seconds", "scheduled_at", "completed_at", *HEAT_FIELDS
        )
    )
    for name, lead_seconds, run_seconds, start, end, *heat in rows:
        lead[name].append(lead_seconds)
        if run_seconds is not None:
            run[name].append(run_seconds)
        # (rows projected on SQLite before they carried their heat map have no first hour)
        add_heat(hours[name], Heat(*heat) if heat[1] is not None else heat_pieces(start, end))
    stats = {
        name: (
            len(values),
            percentile(values, 50),
            percentile(values, 95),
            percentile(run[name], 50),
            percentile(run[name], 95),
            sum(values),
        )
        for name, values in lead.items()
    }
    return stats, hours


def _figures(spec, stats: dict, hours: dict) -> list[TaskFigures]:
    order: list[tuple[str, str, str]] = []
    if spec is not None:
        order = [(t.name, t.stage, t.type) for t in spec.tasks]
    known = {n for n, _, _ in order}
    order += [(n, "", "") for n in sorted(set(stats) - known)]
    figures = []
    for name, stage, ttype in order:
        n, lead50, lead95, run50, run95, total = stats.get(name, (0, None, None, None, None, 0.0))
        f = TaskFigures(name=name, stage=stage, type=ttype, completed=n)
        f.lead_p50, f.lead_p95, f.run_p50, f.run_p95 = lead50, lead95, run50, run95
        if ttype == TaskType.HUMAN:
            f.waiting_p50, f.waiting_p95 = f.lead_p50, f.lead_p95
            f.waiting_total = total
        f.hours = hours.get(name, [0.0] * 24)
        figures.append(f)
    return figures


def counts_by_state(versions: list[ProcessDefinition]) -> tuple[dict, list]:
    """Instances by state, all time, overall and per version (one GROUP BY on an index)."""
    rows = (
        ProcessInstance.objects.filter(definition_id__in=[v.pk for v in versions])
        .order_by()
        .values_list("definition_id", "state")
        .annotate(n=Count("*"))
    )
    version_of = {v.pk: v.version for v in versions}
    by_state = {s: 0 for s in ProcessState.values}
    per_version: dict[int, dict[str, int]] = {}
    for definition_id, state, n in rows:
        by_state[state] = by_state.get(state, 0) + n
        per_version.setdefault(version_of[definition_id], {s: 0 for s in ProcessState.values})[
            state
        ] = n
    return by_state, sorted(per_version.items(), reverse=True)


def overdue_human_tasks(now=None):
    return TaskInstance.objects.overdue(now)


def has_overdue_task(now=None):
    """An Exists() for annotating or filtering instances that have an overdue human task."""
    return Exists(TaskInstance.objects.filter(process=OuterRef("pk")).filter(overdue_q(now)))


def build(key: str, *, days: int = 7, now=None) -> Dashboard:
    now = now or timezone.now()
    since = now - dt.timedelta(days=days)
    versions = list(ProcessDefinition.objects.filter(key=key).order_by("-version"))
    spec = None
    for v in versions:
        if v.status != "draft":
            spec = v.parsed()
            break
    by_state, by_version = counts_by_state(versions)
    caught_up = projections.catch_up(batch=CATCH_UP_BATCH, budget_seconds=CATCH_UP_SECONDS)
    behind = caught_up["left"]
    failed_task = TaskInstance.objects.filter(
        process_id=OuterRef("pk"), state=TaskState.FAILED
    ).order_by("-id")
    incidents_qs = (
        ProcessInstance.objects.filter(definition_key=key, state=ProcessState.FAILED)
        .select_related("definition")
        .annotate(
            failed_task=Subquery(failed_task.values("name")[:1]),
            error=Subquery(failed_task.values("last_error")[:1]),
        )
    )
    breaches_qs = (
        overdue_human_tasks(now).filter(process__definition_key=key).select_related("process")
    )
    incidents = list(incidents_qs.order_by("-created_at")[:LIST_LIMIT])
    # The most overdue first: task_open_human_due walks the open human tasks by due time.
    breaches = list(breaches_qs.order_by("due_at", "id")[:LIST_LIMIT])
    return Dashboard(
        key=key,
        versions=versions,
        since=since,
        by_state=by_state,
        by_version=by_version,
        tasks=[] if behind else task_figures(key, since, spec),
        incidents=incidents,
        incident_count=by_state.get(ProcessState.FAILED, 0),
        breaches=breaches,
        # Counting every breach on a huge table costs more than it tells: stop at BREACH_COUNT_CAP.
        breach_count=len(breaches)
        if len(breaches) < LIST_LIMIT
        else breaches_qs.order_by()[:BREACH_COUNT_CAP].count(),
        behind=behind,
    )
