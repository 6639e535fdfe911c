"""Monitoring figures for one process definition, computed from the event log.

The task figures are read from ``TaskExecution``, the event log's pairing of each completion with
its scheduling and start, kept by ``processes.projections`` (caught up just before the figures
are computed, so they equal those computed from the events; when the projection is far behind,
they are computed from the events directly). For every task execution completed among the
instances started in the window:

- **lead time**: from its last ``task_scheduled`` to its ``task_completed`` (queueing, retries,
  incidents and people included);
- **run time**: from its last ``task_started`` (after that scheduling) to ``task_completed``
  (service tasks: the successful attempt);
- **waiting for people**: the lead time of HUMAN tasks.

Percentiles interpolate linearly between the closest ranks (like PostgreSQL's
``percentile_cont`` and numpy's default). The heat map spreads each execution's lead time over
the hours of the day (local time) it covered.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from processes import projections
from processes.models import (
    EventType,
    ProcessDefinition,
    ProcessInstance,
    ProcessState,
    TaskExecution,
    TaskInstance,
    TaskType,
    overdue_q,
)

LIST_LIMIT = 20
BREACH_COUNT_CAP = 1000


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


def spread_over_hours(start: dt.datetime, end: dt.datetime) -> list[float]:
    """Seconds of [start, end) that fall in each hour of the day (0..23), in local time."""
    hours = [0.0] * 24
    if end <= start:
        return hours
    total = (end - start).total_seconds()
    full_days = int(total // 86400)
    if full_days:
        hours = [3600.0 * full_days] * 24
        start = start + dt.timedelta(days=full_days)
    cursor = timezone.localtime(start)
    end = timezone.localtime(end)
    while cursor < end:
        next_hour = cursor.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
        stop = min(next_hour, end)
        hours[cursor.hour] += (stop - cursor).total_seconds()
        cursor = stop
    return hours


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
    source: str = "projection"  # where the task figures came from: "projection" or "events"

    @property
    def total(self) -> int:
        return sum(self.by_state.values())

    @property
    def heat_max(self) -> float:
        return max((h for t in self.tasks for h in t.hours), default=0.0)


_DURATIONS_SQL = """
SELECT task_name, created_at, sched_at, started_at FROM (
    SELECT e.task_name, e.type, e.created_at,
        MAX(CASE WHEN e.type = %s THEN e.created_at END) OVER w AS sched_at,
        MAX(CASE WHEN e.type = %s THEN e.created_at END) OVER w AS started_at
    FROM processes_processevent e
    JOIN processes_processinstance p ON p.id = e.process_id
    WHERE p.definition_key = %s AND p.created_at >= %s AND e.type IN (%s, %s, %s)
        AND e.task_id IS NOT NULL
    WINDOW w AS (PARTITION BY e.task_id ORDER BY e.seq
                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
) x WHERE x.type = %s
"""


def _as_datetime(value):
    if value is None or isinstance(value, dt.datetime):
        return value
    parsed = parse_datetime(str(value))
    if parsed is not None and timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, dt.UTC)
    return parsed


def task_executions(key: str, since: dt.datetime) -> list[tuple[str, dt.datetime, object, object]]:
    """(task name, completed at, last scheduled at, last started at) per completed execution."""
    with connection.cursor() as cursor:
        cursor.execute(_DURATIONS_SQL, _params(key, since))
        rows = cursor.fetchall()
    return [(n, _as_datetime(c), _as_datetime(s), _as_datetime(st)) for n, c, s, st in rows]


_AGGREGATE_SQL = """
WITH ex AS MATERIALIZED (
    SELECT task_name, done_at, sched_at, started_at, lead, days, rs,
        date_trunc('hour', rs, %(tz)s) AS hs, date_trunc('hour', done_at, %(tz)s) AS he
    FROM (
        SELECT task_name, created_at AS done_at, sched_at,
            CASE WHEN started_at >= sched_at THEN started_at END AS started_at,
            EXTRACT(EPOCH FROM created_at - sched_at) AS lead,
            FLOOR(EXTRACT(EPOCH FROM created_at - sched_at) / 86400) AS days,
            sched_at + FLOOR(EXTRACT(EPOCH FROM created_at - sched_at) / 86400)
                * INTERVAL '1 day' AS rs
        FROM ({durations}) d WHERE sched_at IS NOT NULL
    ) y
)
SELECT 'stats', task_name, COUNT(*)::float8,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY lead),
    percentile_cont(0.95) WITHIN GROUP (ORDER BY lead),
    percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM done_at - started_at))
        FILTER (WHERE started_at IS NOT NULL),
    percentile_cont(0.95) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM done_at - started_at))
        FILTER (WHERE started_at IS NOT NULL),
    SUM(lead), SUM(days)
FROM ex GROUP BY task_name
UNION ALL  -- the first (partial) hour of each execution
SELECT 'first', task_name, EXTRACT(HOUR FROM hs AT TIME ZONE %(tz)s)::float8,
    SUM(EXTRACT(EPOCH FROM LEAST(done_at, hs + INTERVAL '1 hour') - rs)), NULL, NULL, NULL,
    NULL, NULL
FROM ex GROUP BY task_name, 3
UNION ALL  -- the last (partial) hour, when it is another one
SELECT 'last', task_name, EXTRACT(HOUR FROM he AT TIME ZONE %(tz)s)::float8,
    SUM(EXTRACT(EPOCH FROM done_at - he)), NULL, NULL, NULL, NULL, NULL
FROM ex WHERE he > hs AND done_at > he GROUP BY task_name, 3
UNION ALL  -- the whole hours in between: (first hour, how many), counted
SELECT 'full', task_name, EXTRACT(HOUR FROM (hs + INTERVAL '1 hour') AT TIME ZONE %(tz)s)::float8,
    ROUND(EXTRACT(EPOCH FROM he - hs) / 3600) - 1, COUNT(*)::float8, NULL, NULL, NULL, NULL
FROM ex WHERE he > hs + INTERVAL '1 hour' GROUP BY task_name, 3, 4
"""


def _params(key, since):
    return [
        EventType.TASK_SCHEDULED,
        EventType.TASK_STARTED,
        key,
        since,
        EventType.TASK_SCHEDULED,
        EventType.TASK_STARTED,
        EventType.TASK_COMPLETED,
        EventType.TASK_COMPLETED,
    ]


# The same pairing with named parameters. It runs with sequential scans off: the window's
# instances come from the (definition_key, created_at) index and their events from the
# process_id index, never from a scan of the whole log (which the planner picks while the log is
# young, and which grows with it).
_DURATIONS_SQL_PG = """
SELECT task_name, created_at, sched_at, started_at FROM (
    SELECT e.task_name, e.type, e.created_at,
        MAX(CASE WHEN e.type = %(scheduled)s THEN e.created_at END) OVER w AS sched_at,
        MAX(CASE WHEN e.type = %(started)s THEN e.created_at END) OVER w AS started_at
    FROM processes_processevent e
    WHERE e.process_id IN (
            SELECT p.id FROM processes_processinstance p
            WHERE p.definition_key = %(key)s AND p.created_at >= %(since)s
        )
        AND e.type IN (%(scheduled)s, %(started)s, %(completed)s) AND e.task_id IS NOT NULL
    WINDOW w AS (PARTITION BY e.task_id ORDER BY e.seq
                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
) x WHERE x.type = %(completed)s
"""


# The same figures from the projection: its rows carry their durations and heat map pieces.
_AGGREGATE_SQL_PROJECTION = """
WITH ex AS MATERIALIZED (
    SELECT task_name, lead_seconds, run_seconds, heat_days, heat_first_hour, heat_first_seconds,
        heat_last_hour, heat_last_seconds, heat_full_hour, heat_full_hours
    FROM processes_taskexecution
    WHERE definition_key = %(key)s AND process_created_at >= %(since)s
)
SELECT 'stats', task_name, COUNT(*)::float8,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY lead_seconds),
    percentile_cont(0.95) WITHIN GROUP (ORDER BY lead_seconds),
    percentile_cont(0.5) WITHIN GROUP (ORDER BY run_seconds),
    percentile_cont(0.95) WITHIN GROUP (ORDER BY run_seconds),
    SUM(lead_seconds), SUM(heat_days)
FROM ex GROUP BY task_name
UNION ALL
SELECT 'first', task_name, heat_first_hour, SUM(heat_first_seconds), NULL, NULL, NULL, NULL, NULL
FROM ex GROUP BY task_name, heat_first_hour
UNION ALL
SELECT 'last', task_name, heat_last_hour, SUM(heat_last_seconds), NULL, NULL, NULL, NULL, NULL
FROM ex WHERE heat_last_hour IS NOT NULL GROUP BY task_name, heat_last_hour
UNION ALL
SELECT 'full', task_name, heat_full_hour, heat_full_hours, COUNT(*)::float8, NULL, NULL, NULL,
    NULL
FROM ex WHERE heat_full_hour IS NOT NULL GROUP BY task_name, heat_full_hour, heat_full_hours
"""


def _aggregate_in_postgres(key: str, since: dt.datetime, source: str = "projection"):
    """Percentiles and the heat map computed by PostgreSQL: only a few rows come back."""
    tz = timezone.get_current_timezone_name()
    if source == "projection":
        sql = _AGGREGATE_SQL_PROJECTION
    else:
        sql = _AGGREGATE_SQL.format(durations=_DURATIONS_SQL_PG)
    with transaction.atomic(), connection.cursor() as cursor:
        # The planner's cost estimate for this query makes PostgreSQL JIT-compile it: hundreds
        # of milliseconds of compiling for a query that runs in a fraction of that.
        cursor.execute("SET LOCAL jit = off")
        if source != "projection":
            cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(
            sql,
            {
                "scheduled": EventType.TASK_SCHEDULED,
                "started": EventType.TASK_STARTED,
                "completed": EventType.TASK_COMPLETED,
                "key": key,
                "since": since,
                "tz": tz,
            },
        )
        rows = cursor.fetchall()
    stats, hours = {}, defaultdict(lambda: [0.0] * 24)
    for kind, name, a, b, c, d, e, f, g in rows:
        if kind == "stats":
            stats[name] = (int(a), b, c, d, e, float(f or 0), int(g or 0))
        elif kind in ("first", "last"):
            hours[name][int(a)] += b or 0.0
        else:  # `c` executions each spent the whole hours a, a+1, ... a+b-1 (mod 24)
            first, length, count = int(a), int(b), c
            for h in range(first, first + length):
                hours[name][h % 24] += 3600.0 * count
    for name, st in stats.items():  # whole days of waiting count in every hour
        if st[6]:
            acc = hours[name]
            for h in range(24):
                acc[h] += 3600.0 * st[6]
    return stats, hours


def projected_executions(key: str, since: dt.datetime):
    """``task_executions`` read from the projection (caught up by the caller)."""
    return (
        TaskExecution.objects.filter(definition_key=key, process_created_at__gte=since)
        .order_by()
        .values_list("task_name", "completed_at", "scheduled_at", "started_at")
    )


def task_figures(
    key: str,
    since: dt.datetime,
    spec=None,
    in_database: bool | None = None,
    source: str = "projection",
) -> list[TaskFigures]:
    """Figures per task from the projection (``source="projection"``) or the events
    (``"events"``); PostgreSQL aggregates them itself, other databases in Python."""
    if in_database is None:
        in_database = connection.vendor == "postgresql"
    if in_database:
        stats, hours = _aggregate_in_postgres(key, since, source)
        return _figures(spec, stats, hours)
    lead: dict[str, list[float]] = defaultdict(list)
    run: dict[str, list[float]] = defaultdict(list)
    hours: dict[str, list[float]] = defaultdict(lambda: [0.0] * 24)
    rows = projected_executions if source == "projection" else task_executions
    for name, completed_at, scheduled_at, started_at in rows(key, since):
        if scheduled_at is None:
            continue
        lead[name].append((completed_at - scheduled_at).total_seconds())
        if started_at is not None and started_at >= scheduled_at:
            run[name].append((completed_at - started_at).total_seconds())
        spread = spread_over_hours(scheduled_at, completed_at)
        acc = hours[name]
        for h in range(24):
            acc[h] += spread[h]
    stats = {
        name: (
            len(values),
            percentile(values, 50),
            percentile(values, 95),
            percentile(run.get(name, []), 50),
            percentile(run.get(name, []), 95),
            sum(values),
            0,
        )
        for name, values in lead.items()
    }
    return _figures(spec, stats, hours)


def _figures(spec, stats: dict, hours: dict) -> list[TaskFigures]:
    order: list[tuple[str, str, str]] = []
    if spec is not None:
        order = [(t.name, t.stage, t.type) for t in spec.tasks]
    known = {n for n, _, _ in order}
    order += [(n, "", "") for n in sorted(set(stats) - known)]
    figures = []
    for name, stage, ttype in order:
        n, lead50, lead95, run50, run95, total, _ = stats.get(
            name, (0, None, None, None, None, 0.0, 0)
        )
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
    source = "projection" if projections.refresh() else "events"
    incidents_qs = ProcessInstance.objects.filter(
        definition_key=key, state=ProcessState.FAILED
    ).select_related("definition")
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
        tasks=task_figures(key, since, spec, source=source),
        incidents=incidents,
        incident_count=by_state.get(ProcessState.FAILED, 0),
        breaches=breaches,
        # Counting every breach on a huge table costs more than it tells: stop at BREACH_COUNT_CAP.
        breach_count=len(breaches)
        if len(breaches) < LIST_LIMIT
        else breaches_qs.order_by()[:BREACH_COUNT_CAP].count(),
        source=source,
    )


def format_seconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    if value < 172800:
        return f"{value / 3600:.1f} h"
    return f"{value / 86400:.1f} d"


def heatmap_svg(dash: Dashboard) -> str:
    """Tasks x hours of the day; darker = more time spent there (seconds, summed)."""
    from xml.sax.saxutils import escape

    cell_w, cell_h, label_w, top = 26, 20, 170, 26
    rows = dash.tasks
    width = label_w + 24 * cell_w + 10
    height = top + max(len(rows), 1) * cell_h + 24
    peak = dash.heat_max or 1.0
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="fd-heatmap" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="time spent per task by hour of day">'
        "<style>.fd-heatmap text{font:11px sans-serif;fill:#24292f}"
        ".fd-heatmap .hour{font-size:10px;fill:#57606a}"
        ".fd-heatmap rect.cell{stroke:#ffffff;stroke-width:1}</style>"
    ]
    for h in range(24):
        out.append(
            f'<text class="hour" x="{label_w + h * cell_w + cell_w / 2}" y="{top - 8}" '
            f'text-anchor="middle">{h:02d}</text>'
        )
    for i, task in enumerate(rows):
        y = top + i * cell_h
        out.append(
            f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{escape(task.name)}</text>'
        )
        for h, seconds in enumerate(task.hours):
            level = seconds / peak
            # white -> deep orange, like a weather map's heat scale
            r = 255
            g = int(255 - 175 * level)
            b = int(255 - 235 * level)
            fill = "#f6f8fa" if seconds == 0 else f"rgb({r},{g},{b})"
            out.append(
                f'<rect class="cell" data-task="{escape(task.name)}" data-hour="{h}" '
                f'data-seconds="{seconds:.3f}" x="{label_w + h * cell_w}" y="{y}" '
                f'width="{cell_w}" height="{cell_h}" fill="{fill}">'
                f"<title>{escape(task.name)} {h:02d}:00–{h:02d}:59: "
                f"{escape(format_seconds(seconds))}</title></rect>"
            )
    out.append(
        f'<text class="hour" x="{label_w}" y="{height - 6}">hour of day ({timezone.get_current_timezone_name()}); '
        f"darkest = {escape(format_seconds(peak if dash.heat_max else 0))}</text></svg>"
    )
    return "".join(out)
