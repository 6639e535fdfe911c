"""The trends' fixed SQL (PostgreSQL): one definition's ended cases and task executions per
period, with their percentiles (``percentile_cont``), so only a few rows come back. Its Python twin
is ``processes.trends.durations_in_python`` (a test checks they agree).
"""

from __future__ import annotations

import datetime as dt
import functools

from django.db import connection, transaction

from processes.db.projections import names
from processes.models import ProcessInstance, ProcessState, TaskExecution

# Periods are the local calendar's (``AT TIME ZONE``): a month or an ISO week from Monday.
_DURATIONS = """
SELECT 'ended', e.period, '', COUNT(*) FILTER (WHERE e.state = %(completed)s)::float8,
    COUNT(*) FILTER (WHERE e.state = %(cancelled)s)::float8,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY e.lead) FILTER (WHERE e.state = %(completed)s),
    percentile_cont(0.95) WITHIN GROUP (ORDER BY e.lead) FILTER (WHERE e.state = %(completed)s),
    NULL::float8
FROM (
    SELECT date_trunc(%(by)s, {p.completed_at} AT TIME ZONE %(tz)s)::date AS period,
        {p.state} AS state,
        EXTRACT(EPOCH FROM {p.completed_at} - {p.created_at})::float8 AS lead
    FROM {p}
    WHERE {p.definition_key} = %(key)s AND {p.completed_at} >= %(start)s
        AND {p.completed_at} < %(end)s
) e
GROUP BY e.period
UNION ALL
SELECT 'tasks', x.period, x.task_type, COUNT(*)::float8, NULL::float8,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY x.lead),
    percentile_cont(0.95) WITHIN GROUP (ORDER BY x.lead),
    SUM(x.lead)
FROM (
    SELECT date_trunc(%(by)s, {x.completed_at} AT TIME ZONE %(tz)s)::date AS period,
        {x.task_type} AS task_type, {x.lead_seconds} AS lead
    FROM {x}
    WHERE {x.definition_key} = %(key)s AND {x.completed_at} >= %(start)s
        AND {x.completed_at} < %(end)s
) x
GROUP BY x.period, x.task_type
"""


@functools.cache
def _durations_sql() -> str:
    return names(_DURATIONS, p=ProcessInstance, x=TaskExecution)


def durations(*, key: str, by: str, start: dt.datetime, end: dt.datetime, tz: str) -> list:
    """Rows ``(kind, period, type, a, b, c, d, e)`` for ``key`` in [start, end); by kind:

    - ``ended``: the cases that ended in the period: a = completed, b = cancelled, c, d = lead
      time (start to end) p50, p95 of the completed ones;
    - ``tasks``: the task executions completed in the period, per task type: a = how many,
      c, d = their lead time (scheduled to completed) p50, p95, e = its sum.
    """
    params = {
        "key": key,
        "by": by,
        "start": start,
        "end": end,
        "tz": tz,
        "completed": ProcessState.COMPLETED,
        "cancelled": ProcessState.CANCELLED,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")  # compiling it costs more than running it
        cursor.execute(_durations_sql(), params)
        return cursor.fetchall()
