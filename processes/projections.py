"""Read models fed from the event log: the dashboard's task executions.

``TaskExecution`` holds one row per ``task_completed`` event with its last ``task_scheduled`` and
``task_started`` before it, its lead and run times and its share of the heat map (``Heat``): the
one place where an execution's figures are worked out. The engine doesn't write it (its hot path
stays as it is); ``catch_up`` reads the events after a watermark
(``ProjectionState.last_event_id``), from a django-q2 schedule every minute and just before the
dashboard is drawn, so the figures are those of every event committed by then.

On PostgreSQL the rows are computed by one INSERT ... SELECT (``processes.db.projections``);
elsewhere (SQLite) by its Python twin here, ``heat_pieces`` included (a test checks they write
the same rows).

On PostgreSQL an event's id is taken from a sequence when the row is inserted, but the row is
seen only when its transaction commits, maybe after a higher id: a watermark alone would skip it.
So the ids below the watermark that were not there when read are kept (``missing``) with the
snapshot's xmax then, looked up again on every pass, and dropped when they appear or when every
transaction that was running then has ended (``pg_current_snapshot``: the id was rolled back).
SQLite has one writer at a time: what is visible is final.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from typing import NamedTuple

from django.db import connection, transaction
from django.db.models import Max, OuterRef, Subquery
from django.utils import timezone

from processes.db import projections as sql
from processes.models import EventType, ProcessEvent, ProjectionState, TaskExecution
from processes.queue import ensure_periodic

logger = logging.getLogger(__name__)

TASK_EXECUTIONS = "task_executions"
SCHEDULE_NAME = "flowdesk.project_events"
# Events read per transaction when catching up (a back-fill runs as many of these as it needs).
BATCH = 50_000
MAX_MISSING = 10_000
HOUR = dt.timedelta(hours=1)


class Heat(NamedTuple):
    """An execution's share of the heat map (``TaskExecution.heat_*``, in the projection's time
    zone): ``days`` whole days (an hour in every hour of the day), ``first_seconds`` in the hour
    of day ``first_hour``, ``last_seconds`` in ``last_hour`` (another one), and ``full_hours``
    whole hours from ``full_hour`` on."""

    days: int = 0
    first_hour: int | None = None
    first_seconds: float | None = None
    last_hour: int | None = None
    last_seconds: float | None = None
    full_hour: int | None = None
    full_hours: int | None = None


def _hour_start(moment: dt.datetime, tz) -> dt.datetime:
    """The start of ``moment``'s hour of day in ``tz``, at ``moment``'s offset from UTC (as
    PostgreSQL's ``date_trunc('hour', moment, tz)``, also across a clock change)."""
    local = moment.astimezone(tz)
    return moment - dt.timedelta(
        minutes=local.minute, seconds=local.second, microseconds=local.microsecond
    )


def heat_pieces(start: dt.datetime, end: dt.datetime) -> Heat:
    """How [start, end) falls over the hours of the day in the current time zone."""
    tz = timezone.get_current_timezone()
    days = math.floor((end - start).total_seconds() / 86400)
    rest = start + dt.timedelta(days=days)
    first, last = _hour_start(rest, tz), _hour_start(end, tz)
    heat = Heat(days, first.astimezone(tz).hour, (min(end, first + HOUR) - rest).total_seconds())
    if first < last < end:
        heat = heat._replace(
            last_hour=last.astimezone(tz).hour, last_seconds=(end - last).total_seconds()
        )
    if last > first + HOUR:
        heat = heat._replace(
            full_hour=(first + HOUR).astimezone(tz).hour,
            full_hours=math.floor((last - first).total_seconds() / 3600 + 0.5) - 1,
        )
    return heat


def add_heat(hours: list[float], heat: Heat, count: int = 1) -> list[float]:
    """Add ``count`` times ``heat`` to ``hours`` (seconds per hour of the day)."""
    if heat.days:
        for h in range(24):
            hours[h] += 3600.0 * heat.days * count
    if heat.first_hour is not None:
        hours[heat.first_hour] += heat.first_seconds * count
    if heat.last_hour is not None:
        hours[heat.last_hour] += heat.last_seconds * count
    if heat.full_hour is not None:
        for h in range(heat.full_hour, heat.full_hour + heat.full_hours):
            hours[h % 24] += 3600.0 * count
    return hours


def spread_over_hours(start: dt.datetime, end: dt.datetime) -> list[float]:
    """Seconds of [start, end) that fall in each hour of the day (0..23), in local time."""
    return add_heat([0.0] * 24, heat_pieces(start, end))


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
    if connection.vendor == "postgresql":
        return sql.high_and_snapshot()
    return ProcessEvent.objects.aggregate(m=Max("id"))["m"] or 0, None, None


def _still_missing(missing: list, xmin: int) -> tuple[list[int], list]:
    """(ids that appeared since, those still to wait for). An id still absent once every
    transaction that was running when it was first missed has ended never will appear."""
    ids = [event_id for event_id, _ in missing]
    appeared = set(ProcessEvent.objects.filter(id__in=ids).values_list("id", flat=True))
    wait = [[i, x] for i, x in missing if i not in appeared and x > xmin]
    return sorted(appeared), wait


def _new_missing(low: int, high: int, xmax: int) -> list:
    ids = sql.missing_ids(low=low, high=high, limit=MAX_MISSING)
    if len(ids) == MAX_MISSING:
        logger.warning("projection: over %s event ids missing after %s", MAX_MISSING, low)
    return [[i, xmax] for i in ids]


def _project_in_sql(*, low: int = 0, high: int = 0, ids: list[int] | None = None) -> int:
    tz = timezone.get_current_timezone_name()
    if ids is not None:
        return sql.project_ids(ids, tz=tz)
    return sql.project_range(low=low, high=high, tz=tz)


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
    """The rows of ``db.projections.project_range`` / ``project_ids``, through the ORM."""
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
            "task__due_at",
            "task__candidate_role",
            "sched_at",
            "start_at",
            "created_at",
        )
        .order_by("id")
    )
    rows = []
    for (
        eid,
        pid,
        p_created,
        key,
        version,
        name,
        ttype,
        due,
        role,
        sched,
        start,
        done,
    ) in completions:
        if sched is None:
            continue
        started = start if start is not None and start >= sched else None
        heat = heat_pieces(sched, done)
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
                due_at=due,
                candidate_role=role or "",
                **{f"heat_{piece}": value for piece, value in heat._asdict().items()},
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
    """Project the new events, ``batch`` ids per transaction, until done or out of time
    (``left``: event ids not read yet, an upper bound since ids have gaps).

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


def ensure_schedule():
    """Create (or fix) the schedule that keeps the projection current (idempotent)."""
    return ensure_periodic(SCHEDULE_NAME, "processes.projections.catch_up", minutes=1)
