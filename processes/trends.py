"""Trends over time for one process definition: per month or ISO week, how many cases started,
completed and were cancelled, how long the completed ones took, how long tasks waited for people
and for systems, and how many approvals were late, per candidate role.

Read from tables kept as the engine works, never from the event log at request time:

- cases: ``ProcessInstance`` (started by ``created_at``; completed and cancelled by
  ``completed_at``, the lead time from one to the other, ``process_def_ended``);
- task waits and finished late approvals: ``TaskExecution``, the projection of the event log
  (``processes.projections``, caught up first as the dashboard does): per completed execution,
  from its scheduling to its completion; HUMAN tasks are time waiting for people, the
  SERVICE ones for systems (sub-processes are neither: their cases have their own figures); a
  HUMAN execution completed after its task's ``due_at`` was a late approval;
- approvals late and still open: the open HUMAN tasks ``overdue_q`` selects, in the period of
  their due time.

A closed period's figures don't change (cases start and end, tasks finish, "now"): once it
ended over ``CLOSED_AFTER`` ago, they are stored (``TrendPeriod``) and read back, so a request
computes only the current period at a million instances. Periods are those of the current time
zone. PostgreSQL works out the percentiles itself
(``processes.db.trends``: ``percentile_cont``); other databases in ``durations_in_python`` (the
same interpolation, ``dashboard.percentile``). The request's parameters are read by
``parse_query``, for the API and the dashboard alike.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import Count, DateField, F
from django.db.models.functions import Trunc
from django.utils import timezone

from processes import authority, dashboard, projections
from processes.dashboard import percentile
from processes.db import trends as sql
from processes.errors import InvalidInput, NotFound
from processes.models import (
    ProcessDefinition,
    ProcessInstance,
    ProcessState,
    TaskExecution,
    TaskInstance,
    TaskType,
    TrendPeriod,
    overdue_q,
)

PERIODS = ("month", "week")
FORMATS = ("json", "csv")
DEFAULT_PERIODS = 12  # the current period and the 11 before it
MAX_PERIODS = 260  # five years of weeks: a bound on the work one request asks for
# A period is stored once it ended this long ago (events committed late are projected by then).
CLOSED_AFTER = dt.timedelta(hours=1)
FIRST_YEAR, LAST_YEAR = 1970, 9000  # dates outside are typing errors (and overflow the calendar)


@dataclass(frozen=True)
class Query:
    key: str
    by: str
    start: dt.datetime  # the first period's start, inclusive
    end: dt.datetime  # the last period's end, exclusive
    format: str = "json"


@dataclass
class Period:
    start: dt.date
    started: int = 0
    completed: int = 0
    cancelled: int = 0
    lead_p50: float | None = None
    lead_p95: float | None = None
    people_tasks: int = 0
    people_p50: float | None = None
    people_p95: float | None = None
    people_total: float = 0.0
    system_tasks: int = 0
    system_p50: float | None = None
    system_p95: float | None = None
    system_total: float = 0.0
    late_finished: int = 0
    late_open: int = 0
    # candidate role -> [finished late, open past due]
    late_by_role: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class Trends:
    query: Query
    periods: list[Period]
    time_zone: str
    behind: int = 0  # event ids the projection had still to read (task figures incomplete)

    @property
    def roles(self) -> list[str]:
        return sorted({role for p in self.periods for role in p.late_by_role})


# --- the parameters ---------------------------------------------------------------------------


def period_start(day: dt.date, by: str) -> dt.date:
    """The first day of ``day``'s month or ISO week (Monday)."""
    if by == "month":
        return day.replace(day=1)
    return day - dt.timedelta(days=day.weekday())


def next_period(day: dt.date, by: str) -> dt.date:
    if by == "month":
        return (day.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    return day + dt.timedelta(days=7)


def period_starts(start: dt.date, end: dt.date, by: str) -> list[dt.date]:
    """The periods' first days from ``start`` until ``end`` (exclusive)."""
    days = []
    while start < end:
        days.append(start)
        start = next_period(start, by)
    return days


def local_midnight(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def _date(params, name: str) -> dt.date | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        day = dt.date.fromisoformat(raw)
    except (TypeError, ValueError):
        day = None
    if day is None or not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise InvalidInput(
            f"invalid {name}",
            fields={name: [f"a date such as 2026-01-31 (YYYY-MM-DD, {FIRST_YEAR}-{LAST_YEAR})"]},
        )
    return day


def parse_query(user, params, *, today: dt.date | None = None) -> Query:
    """The trends ``user`` asks for with ``params`` (a query dict): ``definition``, ``by``
    (month, the default, or week), ``from`` and ``to`` (dates, the periods that hold them are
    included whole; by default the last ``DEFAULT_PERIODS``) and ``format`` (json or csv).

    A bad value is an ``InvalidInput`` naming the parameter; a definition the user may not see
    (or none) a ``NotFound``, before any other parameter is looked at."""
    key = params.get("definition") or ""
    if not key:
        raise InvalidInput("definition missing", fields={"definition": ["a definition key"]})
    if len(key) > 100 or "\x00" in key:
        raise InvalidInput("invalid definition", fields={"definition": ["a definition key"]})
    check_may_see(user, key)
    by = params.get("by") or "month"
    if by not in PERIODS:
        raise InvalidInput("invalid by", fields={"by": [f"one of {', '.join(PERIODS)}"]})
    output = params.get("format") or "json"
    if output not in FORMATS:
        raise InvalidInput("invalid format", fields={"format": [f"one of {', '.join(FORMATS)}"]})
    today = today or timezone.localdate()
    last = _date(params, "to") or today
    first = _date(params, "from")
    if first is None:
        first = period_start(last, by)
        for _ in range(DEFAULT_PERIODS - 1):
            first = period_start(first - dt.timedelta(days=1), by)
    if first > last:
        raise InvalidInput("from after to", fields={"from": ["on or before to"]})
    start, end = period_start(first, by), next_period(period_start(last, by), by)
    if (end - start).days > MAX_PERIODS * (31 if by == "month" else 7):
        raise InvalidInput(
            "too many periods", fields={"from": [f"at most {MAX_PERIODS} {by}s before to"]}
        )
    return Query(key, by, local_midnight(start), local_midnight(end), output)


def check_may_see(user, key: str) -> None:
    """404 unless ``user`` may see ``key``'s processes (and the definition exists)."""
    if not authority.has_definition_perm(user, authority.SEE, key):
        raise NotFound(f"no definition {key!r}")
    if not ProcessDefinition.objects.filter(key=key).exists():
        raise NotFound(f"no definition {key!r}")


# --- the figures ------------------------------------------------------------------------------


def _trunc(field_name: str, by: str) -> Trunc:
    return Trunc(field_name, by, output_field=DateField(), tzinfo=timezone.get_current_timezone())


def _local_period(moment: dt.datetime, by: str) -> dt.date:
    return period_start(timezone.localtime(moment).date(), by)


def _counted(qs, moment: str, by: str, *group) -> list[tuple]:
    return list(
        qs.order_by()
        .annotate(period=_trunc(moment, by))
        .values_list("period", *group)
        .annotate(n=Count("*"))
    )


def durations_in_python(q: Query) -> list[tuple]:
    """The rows of ``db.trends.durations``, through the ORM."""
    ended: dict = defaultdict(lambda: ([], [0]))
    for done, created, state in (
        ProcessInstance.objects.filter(
            definition_key=q.key, completed_at__gte=q.start, completed_at__lt=q.end
        )
        .order_by()
        .values_list("completed_at", "created_at", "state")
    ):
        leads, cancelled = ended[_local_period(done, q.by)]
        if state == ProcessState.COMPLETED:
            leads.append((done - created).total_seconds())
        elif state == ProcessState.CANCELLED:
            cancelled[0] += 1
    rows = [
        ("ended", period, "", len(leads), n[0], percentile(leads, 50), percentile(leads, 95), None)
        for period, (leads, n) in ended.items()
    ]
    tasks: dict = defaultdict(list)
    for done, task_type, lead in (
        TaskExecution.objects.filter(
            definition_key=q.key, completed_at__gte=q.start, completed_at__lt=q.end
        )
        .order_by()
        .values_list("completed_at", "task_type", "lead_seconds")
    ):
        tasks[(_local_period(done, q.by), task_type)].append(lead)
    rows += [
        ("tasks", period, ttype, len(v), None, percentile(v, 50), percentile(v, 95), sum(v))
        for (period, ttype), v in tasks.items()
    ]
    return rows


def build(q: Query, *, now=None, in_database=None, behind: int | None = None) -> Trends:
    """The figures of every period of ``q`` (empty periods included, in order), the projection
    caught up first (``behind``: it was just now, by the dashboard, with this many ids left).

    Closed periods come from ``TrendPeriod`` when stored; the others are computed, from the
    first one missing on, and those closed since are stored (when the projection is caught up).
    Approvals open past due are counted afresh every time (they close or stay open)."""
    if in_database is None:
        in_database = connection.vendor == "postgresql"
    now = now or timezone.now()
    if behind is None:
        behind = projections.catch_up(
            batch=dashboard.CATCH_UP_BATCH, budget_seconds=dashboard.CATCH_UP_SECONDS
        )["left"]
    tz = timezone.get_current_timezone_name()
    days = period_starts(timezone.localdate(q.start), timezone.localdate(q.end), q.by)
    stored = {
        row.start: Period(row.start, **row.figures)
        for row in TrendPeriod.objects.filter(
            definition_key=q.key, by=q.by, time_zone=tz, start__gte=days[0], start__lte=days[-1]
        )
    }
    periods = {day: stored.get(day) or Period(day) for day in days}
    missing = [day for day in days if day not in stored]
    if missing:
        live = Query(q.key, q.by, local_midnight(missing[0]), q.end)
        computed = {day: Period(day) for day in days if day >= missing[0]}
        _ended_and_done(live, computed, in_database, tz)
        periods.update(computed)
        closed_before = now - CLOSED_AFTER
        if behind == 0:
            TrendPeriod.objects.bulk_create(
                [
                    TrendPeriod(
                        definition_key=q.key,
                        by=q.by,
                        time_zone=tz,
                        start=p.start,
                        figures=_figures(p),
                        computed_at=now,
                    )  # fmt: skip
                    for p in computed.values()
                    if p.start in missing
                    and local_midnight(next_period(p.start, q.by)) <= closed_before
                ],
                ignore_conflicts=True,
            )
    open_late = TaskInstance.objects.filter(
        overdue_q(now), definition_key=q.key, due_at__gte=q.start, due_at__lt=q.end
    )
    for day, role, n in _counted(open_late, "due_at", q.by, "candidate_role"):
        if day in periods:
            periods[day].late_open += n
            periods[day].late_by_role.setdefault(role, [0, 0])[1] += n
    return Trends(q, list(periods.values()), tz, behind=behind)


def _figures(p: Period) -> dict:
    """What ``TrendPeriod`` keeps of a period: all but the open approvals (counted afresh)."""
    figures = {k: v for k, v in vars(p).items() if k not in ("start", "late_open")}
    figures["late_by_role"] = {role: [f, 0] for role, (f, _) in p.late_by_role.items() if f}
    return figures


def _ended_and_done(q: Query, periods: dict, in_database: bool, tz: str) -> None:
    """Add to ``periods`` what happened in [q.start, q.end): cases started and ended, task
    waits, approvals finished late."""

    def at(day) -> Period:  # (a period outside the range can't come back; guard anyway)
        return periods.get(day) or Period(day)

    started = ProcessInstance.objects.filter(
        definition_key=q.key, created_at__gte=q.start, created_at__lt=q.end
    )
    for day, n in _counted(started, "created_at", q.by):
        at(day).started = n
    if in_database:
        rows = sql.durations(key=q.key, by=q.by, start=q.start, end=q.end, tz=tz)
    else:
        rows = durations_in_python(q)
    for kind, day, ttype, a, b, c, d, e in rows:
        p = at(day)
        if kind == "ended":
            p.completed, p.cancelled, p.lead_p50, p.lead_p95 = int(a), int(b), c, d
        elif ttype == TaskType.HUMAN:
            p.people_tasks, p.people_p50, p.people_p95, p.people_total = int(a), c, d, e
        elif ttype == TaskType.SERVICE:  # (a sub-process's wait is its own cases')
            p.system_tasks, p.system_p50, p.system_p95, p.system_total = int(a), c, d, e
    late = TaskExecution.objects.filter(
        definition_key=q.key,
        completed_at__gte=q.start,
        completed_at__lt=q.end,
        task_type=TaskType.HUMAN,
        completed_at__gt=F("due_at"),
    )
    for day, role, n in _counted(late, "completed_at", q.by, "candidate_role"):
        at(day).late_finished += n
        at(day).late_by_role.setdefault(role, [0, 0])[0] += n
