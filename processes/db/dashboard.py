"""The dashboard's fixed SQL (PostgreSQL): one definition's task figures, aggregated from the
projection (``TaskExecution``) by the database, so only a few rows come back. Its Python twin is
``processes.dashboard.aggregate_in_python`` (a test checks they agree).
"""

from __future__ import annotations

import datetime as dt
import functools

from django.db import connection, transaction

from processes.db.projections import names
from processes.models import TaskExecution

# Per task: the counts and percentiles ('stats'), then the heat map's pieces summed by hour:
# the first and last partial hours, and (first whole hour, how many whole hours) with how many
# executions had them ('full').
_AGGREGATE = """
WITH ex AS MATERIALIZED (
    SELECT {x.task_name} AS task_name, {x.lead_seconds} AS lead, {x.run_seconds} AS run,
        {x.heat_days} AS days, {x.heat_first_hour} AS first_hour,
        {x.heat_first_seconds} AS first_seconds, {x.heat_last_hour} AS last_hour,
        {x.heat_last_seconds} AS last_seconds, {x.heat_full_hour} AS full_hour,
        {x.heat_full_hours} AS full_hours
    FROM {x}
    WHERE {x.definition_key} = %(key)s AND {x.process_created_at} >= %(since)s
)
SELECT 'stats', task_name, COUNT(*)::float8,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY lead),
    percentile_cont(0.95) WITHIN GROUP (ORDER BY lead),
    percentile_cont(0.5) WITHIN GROUP (ORDER BY run),
    percentile_cont(0.95) WITHIN GROUP (ORDER BY run),
    SUM(lead), SUM(days)
FROM ex GROUP BY task_name
UNION ALL
SELECT 'first', task_name, first_hour, SUM(first_seconds), NULL, NULL, NULL, NULL, NULL
FROM ex GROUP BY task_name, first_hour
UNION ALL
SELECT 'last', task_name, last_hour, SUM(last_seconds), NULL, NULL, NULL, NULL, NULL
FROM ex WHERE last_hour IS NOT NULL GROUP BY task_name, last_hour
UNION ALL
SELECT 'full', task_name, full_hour, full_hours, COUNT(*)::float8, NULL, NULL, NULL, NULL
FROM ex WHERE full_hour IS NOT NULL GROUP BY task_name, full_hour, full_hours
"""


@functools.cache
def _aggregate_sql() -> str:
    return names(_AGGREGATE, x=TaskExecution)


def task_aggregates(*, key: str, since: dt.datetime) -> list[tuple]:
    """Rows ``(kind, task name, a, b, c, d, e, f, g)`` for the executions of ``key``'s
    instances started since ``since``; by kind:

    - ``stats``: a = completed, b, c = lead p50, p95, d, e = run p50, p95, f = total lead
      seconds, g = whole days of the heat map;
    - ``first`` / ``last``: a = hour of day, b = seconds;
    - ``full``: a = first whole hour, b = how many whole hours, c = executions.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        # The planner's cost estimate for this query makes PostgreSQL JIT-compile it: hundreds
        # of milliseconds of compiling for a query that runs in a fraction of that.
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(_aggregate_sql(), {"key": key, "since": since})
        return cursor.fetchall()
