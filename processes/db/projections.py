"""The projection's fixed SQL (PostgreSQL): task executions from the event log, and what its
watermark needs to know. ``processes.projections`` calls these and holds the Python twin of each
(SQLite runs the twins; a test compares every query with its twin).

Names come from the models' ``_meta``: ``{event}`` is a table, ``{event.created_at}`` a column.
"""

from __future__ import annotations

import functools

from django.db import connection, transaction
from django.db.models import Model

from processes.db import core
from processes.models import (
    EventType,
    ProcessDefinition,
    ProcessEvent,
    ProcessInstance,
    TaskExecution,
    TaskInstance,
)


class Names:
    """A model's quoted table (``{m}``) and column names (``{m.field}``) for ``str.format``."""

    def __init__(self, model: type[Model]):
        self.model = model

    def __str__(self) -> str:
        return core.table(self.model)

    def __getattr__(self, field_name: str) -> str:
        return core.col(self.model, field_name)


def names(sql: str, **models: type[Model]) -> str:
    return sql.format(**{alias: Names(model) for alias, model in models.items()})


# The heat map's pieces of one execution [w.start_at, w.done_at), as projections.heat_pieces
# cuts them: whole days, then the first and the last partial hour of day, and the whole hours
# in between. Used as a LATERAL subquery over a row ``w``.
_HEAT = """
    SELECT h.days,
        EXTRACT(HOUR FROM h.hs AT TIME ZONE %(tz)s)::int AS first_hour,
        EXTRACT(EPOCH FROM LEAST(w.done_at, h.hs + INTERVAL '1 hour') - h.rs)::float8
            AS first_seconds,
        CASE WHEN h.he > h.hs AND w.done_at > h.he
            THEN EXTRACT(HOUR FROM h.he AT TIME ZONE %(tz)s)::int END AS last_hour,
        CASE WHEN h.he > h.hs AND w.done_at > h.he
            THEN EXTRACT(EPOCH FROM w.done_at - h.he)::float8 END AS last_seconds,
        CASE WHEN h.he > h.hs + INTERVAL '1 hour'
            THEN EXTRACT(HOUR FROM (h.hs + INTERVAL '1 hour') AT TIME ZONE %(tz)s)::int
            END AS full_hour,
        CASE WHEN h.he > h.hs + INTERVAL '1 hour'
            THEN (ROUND(EXTRACT(EPOCH FROM h.he - h.hs) / 3600) - 1)::int END AS full_hours
    FROM (
        SELECT d.days, d.rs, date_trunc('hour', d.rs, %(tz)s) AS hs,
            date_trunc('hour', w.done_at, %(tz)s) AS he
        FROM (
            SELECT x.days, w.start_at + x.days * INTERVAL '1 day' AS rs
            FROM (SELECT FLOOR(EXTRACT(EPOCH FROM w.done_at - w.start_at) / 86400)::int AS days) x
        ) d
    ) h
"""

# One row per task_completed event with a task_scheduled before it (ids chosen by {where}).
_INSERT = (
    """
INSERT INTO {execution} (
    {execution.event_id}, {execution.process_id}, {execution.process_created_at},
    {execution.definition_key}, {execution.definition_version}, {execution.task_name},
    {execution.task_type}, {execution.scheduled_at}, {execution.started_at},
    {execution.completed_at}, {execution.lead_seconds}, {execution.run_seconds},
    {execution.heat_days}, {execution.heat_first_hour}, {execution.heat_first_seconds},
    {execution.heat_last_hour}, {execution.heat_last_seconds}, {execution.heat_full_hour},
    {execution.heat_full_hours}, {execution.due_at}, {execution.candidate_role})
SELECT e.{event.id}, e.{event.process_id}, p.{instance.created_at}, p.{instance.definition_key},
    d.{definition.version}, e.{event.task_name}, t.type,
    s.at, CASE WHEN s.started_at >= s.at THEN s.started_at END, e.{event.created_at},
    EXTRACT(EPOCH FROM e.{event.created_at} - s.at)::float8,
    CASE WHEN s.started_at >= s.at
        THEN EXTRACT(EPOCH FROM e.{event.created_at} - s.started_at)::float8 END,
    h.days, h.first_hour, h.first_seconds, h.last_hour, h.last_seconds, h.full_hour,
    h.full_hours, t.due_at, COALESCE(t.role, '')
FROM {event} e
JOIN {instance} p ON p.{instance.id} = e.{event.process_id}
JOIN {definition} d ON d.{definition.id} = p.{instance.definition_id}
-- a look-up per completion (as a plain join, the planner may scan the tasks instead)
LEFT JOIN LATERAL (
    SELECT t.{task.type} AS type, t.{task.due_at} AS due_at, t.{task.candidate_role} AS role
    FROM {task} t WHERE t.{task.id} = e.{event.task_id}
) t ON true
CROSS JOIN LATERAL (  -- the last scheduling and start of the task before its completion
    SELECT MAX(x.{event.created_at}) FILTER (WHERE x.{event.type} = %(scheduled)s) AS at,
        MAX(x.{event.created_at}) FILTER (WHERE x.{event.type} = %(started)s) AS started_at
    FROM {event} x
    WHERE x.{event.task_id} = e.{event.task_id} AND x.{event.seq} < e.{event.seq}
) s
CROSS JOIN LATERAL (SELECT s.at AS start_at, e.{event.created_at} AS done_at) w
CROSS JOIN LATERAL ("""
    + _HEAT
    + """) h
WHERE {where} AND e.{event.type} = %(completed)s AND e.{event.task_id} IS NOT NULL
    AND s.at IS NOT NULL
ON CONFLICT ({execution.event_id}) DO NOTHING
"""
)


_BY_RANGE = "e.{event.id} > %(low)s AND e.{event.id} <= %(high)s"
_BY_IDS = "e.{event.id} = ANY(%(ids)s)"


@functools.cache
def _insert_sql(where: str) -> str:
    return names(
        _INSERT.replace("{where}", where),
        execution=TaskExecution,
        event=ProcessEvent,
        instance=ProcessInstance,
        definition=ProcessDefinition,
        task=TaskInstance,
    )


def _insert(where: str, params: dict, tz: str) -> int:
    params = {
        **params,
        "scheduled": EventType.TASK_SCHEDULED,
        "started": EventType.TASK_STARTED,
        "completed": EventType.TASK_COMPLETED,
        "tz": tz,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")  # compiling it costs more than running it
        cursor.execute(_insert_sql(where), params)
        return cursor.rowcount


def project_range(*, low: int, high: int, tz: str) -> int:
    """Project the completions among the event ids in (low, high]; the rows added."""
    return _insert(_BY_RANGE, {"low": low, "high": high}, tz)


def project_ids(ids: list[int], *, tz: str) -> int:
    """Project the completions among the events ``ids``; the rows added."""
    return _insert(_BY_IDS, {"ids": ids}, tz)


def heat_pieces(spans: list[tuple], *, tz: str) -> list[tuple]:
    """The heat map's pieces of each (start, end) in ``spans`` as the projection computes them:
    (days, first hour, its seconds, last hour, its seconds, first whole hour, whole hours)."""
    sql = (
        "SELECT h.* FROM unnest(%(starts)s::timestamptz[], %(ends)s::timestamptz[])"
        " WITH ORDINALITY AS w(start_at, done_at, n) CROSS JOIN LATERAL (" + _HEAT + ") h"
        " ORDER BY w.n"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql, {"starts": [s for s, _ in spans], "ends": [e for _, e in spans], "tz": tz}
        )
        return [tuple(row) for row in cursor.fetchall()]


@functools.cache
def _missing_sql() -> str:
    return names(
        """
SELECT gap FROM (
    SELECT generate_series(id + 1, next_id - 1) AS gap FROM (
        SELECT id, LEAD(id) OVER (ORDER BY id) AS next_id FROM (
            SELECT {event.id} AS id FROM {event}
            WHERE {event.id} > %(low)s AND {event.id} <= %(high)s
            UNION ALL SELECT %(low)s UNION ALL SELECT %(high)s + 1
        ) ids
    ) pairs WHERE next_id > id + 1
) gaps
ORDER BY gap DESC
LIMIT %(limit)s
""",
        event=ProcessEvent,
    )


def missing_ids(*, low: int, high: int, limit: int) -> list[int]:
    """The ids in (low, high] that no visible event has, ascending: at most ``limit`` of them, the
    newest (a transaction still in flight holds a recent id; old gaps are mostly rollbacks)."""
    with connection.cursor() as cursor:
        cursor.execute(_missing_sql(), {"low": low, "high": high, "limit": limit})
        return sorted(row[0] for row in cursor.fetchall())


def high_and_snapshot() -> tuple[int, int, int]:
    """The highest visible event id, and the snapshot's xmin and xmax, read at once."""
    sql = names(
        "SELECT (SELECT MAX({event.id}) FROM {event}),"
        " pg_snapshot_xmin(pg_current_snapshot())::text::bigint,"
        " pg_snapshot_xmax(pg_current_snapshot())::text::bigint",
        event=ProcessEvent,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        high, xmin, xmax = cursor.fetchone()
    return high or 0, xmin, xmax
