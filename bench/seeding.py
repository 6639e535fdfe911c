"""The benches' bulk data sets: process instances, their tasks and their events, up to millions.

One home for it (bench/admin.py, bench/inbox.py, bench/api.py and bench/timers.py seed through
here). Rows are written with ``INSERT ... SELECT`` over ``generate_series``, not through the
engine: a million engine calls would take hours.

Every INSERT is built from the model's own fields (``insert_select``): a column the seeding names
gets its SQL expression, any other column its field's default (or NULL where it may be null),
and a NOT NULL column with neither stops the seeding with its name. So a new column breaks the
benches' smoke test (tests/test_benches.py), not the next 1M measurement months later.

The tasks of an instance are its definition's (``definition.parsed()``), in the states its
instance's state implies: out of every 100 instances ``running`` wait on their first human task
(a third of those overdue), ``failed`` have an incident on a service step, ``cancelled`` stopped
after their first stage, the rest completed. Instances are spread over the last ``days`` days;
those of the last ``events_days`` days get their events (the dashboard reads only its window).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.db import connection, models

SEEDED_BY = "bench"  # ProcessInstance.started_by of every seeded instance


class SeedingError(Exception):
    """The seeding cannot fill a column of the models as they are now."""


def insert_select(model, values: dict[str, str], source: str) -> str:
    """``INSERT INTO <model's table> (<every concrete column>) SELECT ... <source>``.

    ``values`` maps a field name (or its column) to the SQL expression that fills it; a column
    left out gets the field's default as a literal, NULL when the field may be null, or the
    database's own default (``db_default``). A NOT NULL column with none of these, a unique
    column with a default (every row would repeat it) or a name the model doesn't have raises
    ``SeedingError``: the seeding must learn the new column.
    """
    values = dict(values)
    columns, expressions = [], []
    for field in model._meta.concrete_fields:
        given = values.pop(field.name, None) or values.pop(field.column, None)
        if given is not None:
            columns.append(field.column)
            expressions.append(given)
            continue
        if isinstance(field, models.AutoField) or field.db_default is not models.NOT_PROVIDED:
            continue  # the database fills it
        if field.has_default():
            if field.unique or field.primary_key:
                raise SeedingError(
                    f"{model.__name__}.{field.name} is unique: bench/seeding.py must give it "
                    "a value per row"
                )
            value = field.get_db_prep_save(field.get_default(), connection)
            columns.append(field.column)
            expressions.append(literal(value))
        elif field.null:
            continue
        else:
            raise SeedingError(
                f"{model.__name__}.{field.name} ({model._meta.db_table}.{field.column}) is NOT "
                "NULL and has no default: give it a value in bench/seeding.py"
            )
    if values:
        raise SeedingError(f"{model.__name__} has no field {', '.join(sorted(values))}")
    return (
        f"INSERT INTO {model._meta.db_table} ({', '.join(columns)})\n"
        f"SELECT {', '.join(expressions)}\n{source}"
    )


def literal(value) -> str:
    """``value`` as an SQL literal, adapted as psycopg adapts a parameter."""
    from psycopg import sql

    connection.ensure_connection()
    return sql.Literal(value).as_string(connection.connection)


def vacuum(*tables: str) -> None:
    """``VACUUM ANALYZE`` each table, as autovacuum keeps a live database: a bulk load or a
    migration that rewrote its rows leaves the index-only scans reading the table meanwhile."""
    for table in tables:
        execute(f"VACUUM ANALYZE {table}")


def execute(statement: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(statement)
        return cursor.rowcount


@dataclass(frozen=True)
class Mix:
    """Out of every 100 instances: how many are running, failed, cancelled (the rest completed)."""

    running: int = 10
    failed: int = 3
    cancelled: int = 2


def _task_plan(spec) -> list[dict]:
    """The definition's tasks in start order, with the state each is in for each instance state."""
    tasks = [
        (index, stage, task) for index, stage in enumerate(spec.stages) for task in stage.tasks
    ]
    if not tasks:
        raise SeedingError(f"definition {spec.key} has no task")
    human = next((k for k, (_, _, t) in enumerate(tasks) if t.type == "HUMAN"), None)
    waiting = human if human is not None else len(tasks) - 1
    service = [k for k, (_, _, t) in enumerate(tasks) if t.type == "SERVICE"]
    before = [k for k in service if k < waiting]
    failing = before[-1] if before else (service[0] if service else waiting)
    first_stage = tasks[0][0]
    plan = []
    for k, (index, stage, task) in enumerate(tasks):
        running = "completed" if k < waiting else "scheduled" if k == waiting else "pending"
        failed = "completed" if k < failing else "failed" if k == failing else "pending"
        cancelled = "completed" if index == first_stage else "cancelled"
        plan.append(
            {
                "k": k,
                "stage": stage.name,
                "stage_index": index,
                "name": task.name,
                "type": task.type,
                "handler": task.handler or "",
                "queue": task.task_queue or "",
                "role": task.assigned_to or "",
                "status": task.business_status or "",
                "decision": task.outcomes[0] if task.outcomes else "",
                "escalates": task.escalation is not None,
                "running": running,
                "failed": failed,
                "cancelled": cancelled,
            }
        )
    return plan


def _values(rows: list[tuple]) -> str:
    return ", ".join("(" + ", ".join(literal(v) for v in row) + ")" for row in rows)


def seed_processes(
    definitions,
    n: int,
    *,
    tag: str = "fd",
    prefix: str = "ORDER-",
    mix: Mix = Mix(),  # noqa: B008 - frozen
    days: int = 365,
    events_days: int = 30,
    roles: list[str] | None = None,
    decided_by: int | None = None,
    variables: str = "'{}'::jsonb",
    echo=print,
) -> None:
    """``n`` instances spread over ``definitions`` (round robin), their tasks and recent events.

    - ``tag`` makes the instance ids (``md5(tag || i)``): seed twice with two tags, not one;
    - ``roles``: the open human tasks' candidate roles, spread over these (else the spec's);
    - ``decided_by``: a user id that decided every 1000th completed human task ("done by me");
    - ``variables``: SQL for the instance variables, over the series' ``i``.
    """
    started = time.monotonic()
    from processes.models import ProcessInstance, TaskInstance

    plans = {d.pk: (d, d.parsed(), _task_plan(d.parsed())) for d in definitions}
    count = len(plans)
    for position, (definition, spec, plan) in enumerate(plans.values()):
        tasks = len(plan)
        waiting = next(p for p in plan if p["running"] == "scheduled")
        statuses = [p["status"] for p in plan if p["status"]]
        running_status = next(
            (p["status"] for p in reversed(plan[: waiting["k"]]) if p["status"]), ""
        )
        state = (
            f"CASE WHEN i % 100 < {mix.running} THEN 'running' "
            f"WHEN i % 100 < {mix.running + mix.failed} THEN 'failed' "
            f"WHEN i % 100 < {mix.running + mix.failed + mix.cancelled} THEN 'cancelled' "
            "ELSE 'completed' END"
        )
        created = f"now() - (i::float8 / {n}) * interval '{days} days'"
        execute(
            insert_select(
                ProcessInstance,
                {
                    "id": f"md5({literal(tag)} || i)::uuid",
                    "definition": str(definition.pk),
                    "definition_key": literal(definition.key),
                    "business_key": f"{literal(prefix)} || lpad(i::text, 7, '0')",
                    # what search finds it by (spec.search_text): its key and a name
                    "search_text": f"lower({literal(prefix)} || lpad(i::text, 7, '0')) "
                    "|| chr(10) || 'name' || i::text",
                    "state": state,
                    "business_status": f"CASE WHEN {state} = 'completed' THEN "
                    f"{literal(statuses[-1] if statuses else '')} "
                    f"ELSE {literal(running_status)} END",
                    "current_stage": f"CASE WHEN {state} = 'completed' "
                    f"THEN {literal(spec.stages[-1].name)} "
                    f"ELSE {literal(waiting['stage'])} END",
                    "variables": variables,
                    "last_seq": str(1 + 3 * tasks),
                    "started_by": literal(SEEDED_BY),
                    "unique_ever": "true" if spec.business_key_unique == "ever" else "false",
                    "created_at": created,
                    "updated_at": f"{created} + interval '2 hours'",
                    "completed_at": f"CASE WHEN {state} IN ('completed', 'cancelled') "
                    f"THEN {created} + interval '2 hours' END",
                },
                f"FROM generate_series(1, {n}) AS i WHERE i % {count} = {position}",
            )
        )
        echo(f"  {definition.key}: instances {time.monotonic() - started:.0f} s", flush=True)
        rows = _values(
            [
                (p["k"], p["stage"], p["stage_index"], p["name"], p["type"], p["handler"],
                 p["queue"], p["role"], p["decision"], p["escalates"], p["running"],
                 p["failed"], p["cancelled"])
                for p in plan
            ]
        )  # fmt: skip
        task_state = (
            "CASE p.state WHEN 'running' THEN t.running WHEN 'failed' THEN t.failed "
            "WHEN 'cancelled' THEN t.cancelled ELSE 'completed' END"
        )
        opened = "p.created_at + t.k * interval '20 minutes'"
        role = (
            "CASE WHEN t.type = 'HUMAN' THEN "
            + (
                f"(ARRAY[{', '.join(literal(r) for r in roles)}])"
                f"[1 + ('x' || substr(p.id::text, 3, 4))::bit(16)::int % {len(roles)}]"
                if roles
                else "t.role"
            )
            + " ELSE t.role END"
        )
        human_done = f"t.type = 'HUMAN' AND {task_state} = 'completed'"
        execute(
            insert_select(
                TaskInstance,
                {
                    "process": "p.id",
                    "definition_key": "p.definition_key",
                    "stage": "t.stage",
                    "stage_index": "t.stage_index",
                    "name": "t.name",
                    "type": "t.type",
                    "handler": "t.handler",
                    "task_queue": "t.queue",
                    "state": task_state,
                    "attempts": f"CASE WHEN {task_state} = 'pending' THEN 0 ELSE 1 END",
                    "result": f"CASE WHEN {human_done} AND t.decision <> '' "
                    "THEN jsonb_build_object('decision', t.decision) "
                    f"WHEN {task_state} = 'completed' THEN '{{}}'::jsonb END",
                    "last_error": f"CASE WHEN {task_state} = 'failed' "
                    "THEN 'HTTP 503 from the kitchen (seeded)' ELSE '' END",
                    "candidate_role": role,
                    "decided_by": f"CASE WHEN {human_done} AND "
                    "('x' || substr(p.id::text, 1, 3))::bit(12)::int % 1000 = 0 "
                    f"THEN {decided_by if decided_by else 'NULL'}::bigint END",
                    "visibility": literal(spec.visibility),
                    # a third of the open human tasks overdue, the rest due within 200 hours
                    "due_at": "CASE WHEN t.type = 'HUMAN' THEN now() + CASE WHEN "
                    "('x' || substr(p.id::text, 1, 2))::bit(8)::int % 3 = 0 "
                    "THEN -1 ELSE 1 END * ((i_hours.h % 200) + 1) * interval '1 hour' END",
                    "wake_at": f"CASE WHEN t.escalates AND {task_state} = 'scheduled' "
                    "THEN now() + interval '400 days' END",
                    "scheduled_at": f"CASE WHEN {task_state} <> 'pending' THEN {opened} END",
                    "started_at": f"CASE WHEN t.type <> 'HUMAN' AND {task_state} IN "
                    f"('completed', 'failed') THEN {opened} + interval '1 minute' END",
                    "finished_at": f"CASE WHEN {task_state} IN ('completed', 'failed', "
                    f"'cancelled') THEN {opened} + interval '19 minutes' END",
                    "created_at": "p.created_at",
                },
                f"FROM processes_processinstance p CROSS JOIN (VALUES {rows}) AS t(k, stage, "
                "stage_index, name, type, handler, queue, role, decision, escalates, running, "
                "failed, cancelled) CROSS JOIN LATERAL (SELECT ('x' || substr(p.id::text, 5, 4))"
                "::bit(16)::int AS h) AS i_hours "
                f"WHERE p.definition_id = {definition.pk} AND p.started_by = {literal(SEEDED_BY)}",
            )
        )
        echo(f"  {definition.key}: + tasks {time.monotonic() - started:.0f} s", flush=True)
        _seed_events(definition, plan, events_days)
        echo(f"  {definition.key}: + events {time.monotonic() - started:.0f} s", flush=True)
    execute(
        "ANALYZE processes_processinstance; ANALYZE processes_taskinstance; "
        "ANALYZE processes_processevent"
    )
    echo(f"seeded {n:,} instances in {time.monotonic() - started:.0f} s", flush=True)


def _seed_events(definition, plan, events_days: int) -> None:
    """The history of the instances started in the last ``events_days`` days: started, then per
    task scheduled / started (service steps) / completed or failed, seq as the engine numbers."""
    from processes.models import ProcessEvent

    recent = f"p.created_at >= now() - {int(events_days)} * interval '1 day'"
    execute(
        insert_select(
            ProcessEvent,
            {
                "process": "p.id",
                "seq": "1",
                "type": literal("process_started"),
                "task_name": "''",
                "actor_type": literal("system"),
                "actor_label": literal(SEEDED_BY),
                "created_at": "p.created_at",
            },
            f"FROM processes_processinstance p WHERE p.definition_id = {definition.pk} "
            f"AND p.started_by = {literal(SEEDED_BY)} AND {recent}",
        )
    )
    order = _values([(p["name"], p["k"]) for p in plan])
    execute(
        insert_select(
            ProcessEvent,
            {
                "process": "ti.process_id",
                "seq": "2 + t.k * 3 + e.e",
                "type": "CASE e.e WHEN 0 THEN 'task_scheduled' WHEN 1 THEN 'task_started' "
                "ELSE CASE ti.state WHEN 'failed' THEN 'task_failed' "
                "ELSE 'task_completed' END END",
                "task": "ti.id",
                "task_name": "ti.name",
                "actor_type": "CASE WHEN ti.type = 'HUMAN' THEN 'system' ELSE 'worker' END",
                "actor_label": literal(SEEDED_BY),
                "created_at": "ti.scheduled_at + e.e * (1 + ti.id % 7) * interval '3 minutes' "
                "+ CASE WHEN ti.type = 'HUMAN' AND e.e = 2 "
                "THEN (ti.id % 11) * interval '1 hour' ELSE interval '0' END",
            },
            "FROM processes_taskinstance ti "
            "JOIN processes_processinstance p ON p.id = ti.process_id "
            f"JOIN (VALUES {order}) AS t(name, k) ON t.name = ti.name "
            "CROSS JOIN generate_series(0, 2) AS e(e) "
            f"WHERE p.definition_id = {definition.pk} AND p.started_by = "
            f"{literal(SEEDED_BY)} AND {recent} AND ti.scheduled_at IS NOT NULL AND ("
            "e.e = 0 OR ti.state IN ('completed', 'failed') "
            "AND NOT (ti.type = 'HUMAN' AND e.e = 1))",
        )
    )


def seeded(definition_keys) -> int:
    """How many seeded instances the database holds for these definitions."""
    from processes.models import ProcessInstance

    return ProcessInstance.objects.filter(
        started_by=SEEDED_BY, definition_key__in=list(definition_keys)
    ).count()


def seed_open_timers(definition, timers: int, *, tag: str = "timers") -> None:
    """``timers`` open timers: ``timers // tasks`` running instances of ``definition`` (its tasks
    all human and open), each task waking within 30 days, each instance with a deadline
    (the partial indexes ``task_wake_at`` and ``process_deadline_at`` hold them all)."""
    from processes.models import ProcessInstance, TaskInstance

    plan = _task_plan(definition.parsed())
    instances = timers // len(plan)
    execute(
        insert_select(
            ProcessInstance,
            {
                "id": f"md5({literal(tag)} || g)::uuid",
                "definition": str(definition.pk),
                "definition_key": literal(definition.key),
                "business_key": "'B-' || g",
                "state": "'running'",
                "current_stage": literal(plan[0]["stage"]),
                "last_seq": "0",
                "started_by": literal(SEEDED_BY),
                "created_at": "now()",
                "updated_at": "now()",
                "deadline_at": "now() + interval '1 day' + g * interval '1 second'",
            },
            f"FROM generate_series(1, {instances}) AS g",
        )
    )
    rows = _values([(p["stage"], p["stage_index"], p["name"], p["type"], p["role"]) for p in plan])
    execute(
        insert_select(
            TaskInstance,
            {
                "process": f"md5({literal(tag)} || g)::uuid",
                "definition_key": literal(definition.key),
                "stage": "t.stage",
                "stage_index": "t.stage_index",
                "name": "t.name",
                "type": "t.type",
                "state": "'scheduled'",
                "candidate_role": "t.role",
                "created_at": "now()",
                "scheduled_at": "now()",
                "due_at": "now() + random() * interval '30 days'",
                "wake_at": "now() + interval '1 hour' + random() * interval '30 days'",
            },
            f"FROM generate_series(1, {instances}) AS g CROSS JOIN (VALUES {rows}) "
            "AS t(stage, stage_index, name, type, role)",
        )
    )
    execute("ANALYZE processes_taskinstance; ANALYZE processes_processinstance")
