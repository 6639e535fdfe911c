"""Read models fed from the event log: the dashboard's task executions.

``TaskExecution`` holds one row per ``task_completed`` event with its last ``task_scheduled`` and
``task_started`` before it: the pairing the dashboard used to redo over every event of its window
on each page view. The engine doesn't write it (its hot path stays as it is); ``catch_up`` reads
the events after a watermark (``ProjectionState.last_event_id``), from a django-q2 schedule every
minute and, when only a few events are new, just before the dashboard is drawn, so the figures
are those of every event committed by then.

On PostgreSQL an event's id is taken from a sequence when the row is inserted, but the row is
seen only when its transaction commits, maybe after a higher id: a watermark alone would skip it.
So the ids below the watermark that were not there when read are kept (``missing``) with the
snapshot's xmax then, looked up again on every pass, and dropped when they appear or when every
transaction that was running then has ended (``pg_current_snapshot``: the id was rolled back).
SQLite has one writer at a time: what is visible is final.
"""

from __future__ import annotations

import logging
import time

from django.db import connection, transaction
from django.db.models import Max, OuterRef, Subquery
from django.utils import timezone

from processes.models import EventType, ProcessEvent, ProjectionState, TaskExecution

logger = logging.getLogger(__name__)

TASK_EXECUTIONS = "task_executions"
SCHEDULE_NAME = "flowdesk.project_events"
# Events read per transaction when catching up (a back-fill runs as many of these as it needs).
BATCH = 50_000
# The dashboard catches up itself when at most this many events are new; beyond, it computes its
# figures from the events directly (exact, slower) and leaves the rest to the schedule.
ON_DEMAND_LIMIT = 20_000

_INSERT_SQL = """
INSERT INTO processes_taskexecution (
    event_id, process_id, process_created_at, definition_key, definition_version, task_name,
    task_type, scheduled_at, started_at, completed_at, lead_seconds, run_seconds,
    heat_days, heat_first_hour, heat_first_seconds, heat_last_hour, heat_last_seconds,
    heat_full_hour, heat_full_hours)
SELECT e.id, e.process_id, p.created_at, p.definition_key, d.version, e.task_name, t.type,
    s.at, CASE WHEN r.at >= s.at THEN r.at END, e.created_at,
    EXTRACT(EPOCH FROM e.created_at - s.at)::float8,
    CASE WHEN r.at >= s.at THEN EXTRACT(EPOCH FROM e.created_at - r.at)::float8 END,
    -- the heat map's pieces, as dashboard.spread_over_hours cuts them
    h.days,
    EXTRACT(HOUR FROM h.hs AT TIME ZONE %(tz)s),
    EXTRACT(EPOCH FROM LEAST(e.created_at, h.hs + INTERVAL '1 hour') - h.rs)::float8,
    CASE WHEN h.he > h.hs AND e.created_at > h.he
        THEN EXTRACT(HOUR FROM h.he AT TIME ZONE %(tz)s) END,
    CASE WHEN h.he > h.hs AND e.created_at > h.he
        THEN EXTRACT(EPOCH FROM e.created_at - h.he)::float8 END,
    CASE WHEN h.he > h.hs + INTERVAL '1 hour'
        THEN EXTRACT(HOUR FROM (h.hs + INTERVAL '1 hour') AT TIME ZONE %(tz)s) END,
    CASE WHEN h.he > h.hs + INTERVAL '1 hour'
        THEN ROUND(EXTRACT(EPOCH FROM h.he - h.hs) / 3600) - 1 END
FROM processes_processevent e
JOIN processes_processinstance p ON p.id = e.process_id
JOIN processes_processdefinition d ON d.id = p.definition_id
JOIN processes_taskinstance t ON t.id = e.task_id
CROSS JOIN LATERAL (
    SELECT MAX(x.created_at) AS at FROM processes_processevent x
    WHERE x.task_id = e.task_id AND x.seq < e.seq AND x.type = %(scheduled)s
) s
CROSS JOIN LATERAL (
    SELECT MAX(x.created_at) AS at FROM processes_processevent x
    WHERE x.task_id = e.task_id AND x.seq < e.seq AND x.type = %(started)s
) r
CROSS JOIN LATERAL (
    SELECT days, rs, date_trunc('hour', rs, %(tz)s) AS hs,
        date_trunc('hour', e.created_at, %(tz)s) AS he
    FROM (SELECT FLOOR(EXTRACT(EPOCH FROM e.created_at - s.at) / 86400) AS days) d1,
    LATERAL (SELECT s.at + d1.days * INTERVAL '1 day' AS rs) d2
) h
WHERE {where} AND e.type = %(completed)s AND e.task_id IS NOT NULL AND s.at IS NOT NULL
ON CONFLICT (event_id) DO NOTHING
"""

# The ids in (low, high] that no visible event has (at most MAX_MISSING of them).
_MISSING_SQL = """
SELECT generate_series(id + 1, next_id - 1) FROM (
    SELECT id, LEAD(id) OVER (ORDER BY id) AS next_id FROM (
        SELECT id FROM processes_processevent WHERE id > %(low)s AND id <= %(high)s
        UNION ALL SELECT %(low)s UNION ALL SELECT %(high)s + 1
    ) ids
) pairs WHERE next_id > id + 1
LIMIT %(limit)s
"""
MAX_MISSING = 10_000


def _locked_state() -> ProjectionState:
    """The watermark row, locked: one catch-up at a time."""
    state = ProjectionState.objects.select_for_update().filter(name=TASK_EXECUTIONS).first()
    if state is None:
        ProjectionState.objects.bulk_create(
            [ProjectionState(name=TASK_EXECUTIONS)], ignore_conflicts=True
        )
        state = ProjectionState.objects.select_for_update().get(name=TASK_EXECUTIONS)
    return state


def _high_and_xids() -> tuple[int, int | None, int | None]:
    """The highest visible event id, and the snapshot's xmin and xmax (PostgreSQL), at once."""
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            cursor.execute("SELECT MAX(id) FROM processes_processevent")
            return cursor.fetchone()[0] or 0, None, None
        cursor.execute(
            "SELECT (SELECT MAX(id) FROM processes_processevent),"
            " pg_snapshot_xmin(pg_current_snapshot())::text::bigint,"
            " pg_snapshot_xmax(pg_current_snapshot())::text::bigint"
        )
        high, xmin, xmax = cursor.fetchone()
        return high or 0, xmin, xmax


def _still_missing(missing: list, xmin: int) -> tuple[list[int], list]:
    """(ids that appeared since, those still to wait for). An id still absent once every
    transaction that was running when it was first missed has ended never will appear."""
    ids = [event_id for event_id, _ in missing]
    appeared = set(ProcessEvent.objects.filter(id__in=ids).values_list("id", flat=True))
    wait = [[i, x] for i, x in missing if i not in appeared and x > xmin]
    return sorted(appeared), wait


def _new_missing(low: int, high: int, xmax: int) -> list:
    with connection.cursor() as cursor:
        cursor.execute(_MISSING_SQL, {"low": low, "high": high, "limit": MAX_MISSING})
        ids = [row[0] for row in cursor.fetchall()]
    if len(ids) == MAX_MISSING:
        logger.warning("projection: over %s event ids missing after %s", MAX_MISSING, low)
    return [[i, xmax] for i in ids]


def _project_in_sql(*, low: int = 0, high: int = 0, ids: list[int] | None = None) -> int:
    params = {
        "scheduled": EventType.TASK_SCHEDULED,
        "started": EventType.TASK_STARTED,
        "completed": EventType.TASK_COMPLETED,
        "low": low,
        "high": high,
        "ids": ids,
        "tz": timezone.get_current_timezone_name(),
    }
    where = "e.id = ANY(%(ids)s)" if ids is not None else "e.id > %(low)s AND e.id <= %(high)s"
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_SQL.format(where=where), params)
        return cursor.rowcount


def _last(event_type: str) -> Subquery:
    return Subquery(
        ProcessEvent.objects.filter(
            task_id=OuterRef("task_id"), seq__lt=OuterRef("seq"), type=event_type
        )
        .order_by()
        .values("task_id")
        .annotate(at=Max("created_at"))
        .values("at")
    )


def _project_in_python(*, low: int = 0, high: int = 0, ids: list[int] | None = None) -> int:
    """The same rows as ``_INSERT_SQL`` but the heat map's pieces, through the ORM (SQLite: its
    dashboard spreads the times over the hours itself)."""
    events = ProcessEvent.objects.filter(id__in=ids) if ids is not None else None
    if events is None:
        events = ProcessEvent.objects.filter(id__gt=low, id__lte=high)
    completions = (
        events.filter(type=EventType.TASK_COMPLETED, task__isnull=False)
        .annotate(sched_at=_last(EventType.TASK_SCHEDULED), start_at=_last(EventType.TASK_STARTED))
        .values_list(
            "id",
            "process_id",
            "process__created_at",
            "process__definition_key",
            "process__definition__version",
            "task_name",
            "task__type",
            "sched_at",
            "start_at",
            "created_at",
        )
        .order_by("id")
    )
    rows = []
    for eid, pid, p_created, key, version, name, ttype, sched, start, done in completions:
        if sched is None:
            continue
        started = start if start is not None and start >= sched else None
        rows.append(
            TaskExecution(
                event_id=eid,
                process_id=pid,
                process_created_at=p_created,
                definition_key=key,
                definition_version=version,
                task_name=name,
                task_type=ttype,
                scheduled_at=sched,
                started_at=started,
                completed_at=done,
                lead_seconds=(done - sched).total_seconds(),
                run_seconds=(done - started).total_seconds() if started is not None else None,
            )
        )
    TaskExecution.objects.bulk_create(rows, batch_size=500, ignore_conflicts=True)
    return len(rows)


def _step(batch: int, in_database: bool) -> tuple[int, int, int]:
    """Project the completed events of the next ``batch`` ids, and those that were missing and
    have appeared: (rows added, the new watermark, the highest visible id)."""
    project = _project_in_sql if in_database else _project_in_python
    with transaction.atomic():
        state = _locked_state()
        tz = timezone.get_current_timezone_name()
        if state.time_zone != tz:  # the heat map's hours are another zone's: start again
            TaskExecution.objects.all().delete()
            state.last_event_id, state.missing, state.time_zone = 0, [], tz
        high, xmin, xmax = _high_and_xids()
        low = state.last_event_id
        added = 0
        if state.missing and xmin is not None:
            appeared, state.missing = _still_missing(state.missing, xmin)
            if appeared:
                added += project(ids=appeared)
        upto = min(high, low + batch)
        if upto > low:
            if xmin is not None and xmin != xmax:  # others are writing: some ids may be in flight
                state.missing += _new_missing(low, upto, xmax)
            added += project(low=low, high=upto)
            state.last_event_id = upto
        state.updated_at = timezone.now()
        state.save()
        return added, state.last_event_id, high


def catch_up(*, batch: int = BATCH, budget_seconds: float = 50.0, in_database=None) -> dict:
    """Project the new events, ``batch`` ids per transaction, until done or out of time.

    Idempotent and safe to run concurrently (the watermark row serialises runs).
    """
    if in_database is None:
        in_database = connection.vendor == "postgresql"
    deadline = time.monotonic() + budget_seconds
    added = passes = 0
    while True:
        n, last, high = _step(batch, in_database)
        added += n
        passes += 1
        if last >= high or time.monotonic() >= deadline:
            break
    if added:
        logger.info("projection %s: %s rows added up to event %s", TASK_EXECUTIONS, added, last)
    return {"added": added, "passes": passes, "left": high - last}


def lag() -> int:
    """How many event ids the projection has not read yet (an upper bound: ids have gaps); all
    of them when its heat map is in another time zone."""
    state = (
        ProjectionState.objects.filter(name=TASK_EXECUTIONS)
        .values_list("last_event_id", "time_zone")
        .first()
    )
    high = ProcessEvent.objects.aggregate(m=Max("id"))["m"] or 0
    if state is None or state[1] != timezone.get_current_timezone_name():
        return high
    return max(0, high - state[0])


def refresh(limit: int | None = None) -> bool:
    """Catch up now if few events are new; True when the projection then holds every visible
    completed execution (so figures read from it equal those computed from the events)."""
    limit = ON_DEMAND_LIMIT if limit is None else limit
    if lag() > limit:
        return False
    catch_up(batch=limit, budget_seconds=0)
    return True


def ensure_schedule():
    """Create (or fix) the schedule that keeps the projection current (idempotent)."""
    from processes.worker import ensure_periodic

    return ensure_periodic(SCHEDULE_NAME, "processes.projections.catch_up", minutes=1)
