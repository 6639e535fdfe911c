"""What every engine event and every process read runs: an instance with its definition's
identity (locked for an event), its tasks, and the business-key check of a start."""

from __future__ import annotations

import functools
from typing import NamedTuple

from django.contrib.auth import get_user_model
from django.db import connection

from processes.db.core import col, columns, prep, table
from processes.db.internals import convert, fetch, fetch_with, partial
from processes.models import (
    ACTIVE_PROCESS_STATES,
    ArchivedBusinessKey,
    DefinitionStatus,
    ProcessDefinition,
    ProcessInstance,
    TaskInstance,
)


def _instance_sql(where: str, extra_columns: str = "") -> str:
    """The instance with its definition's identity (SQL text kept per arguments and vendor:
    building it cost more CPU than PostgreSQL took to run it)."""
    return _instance_sql_for(where, extra_columns, connection.vendor)


@functools.lru_cache(maxsize=64)
def _instance_sql_for(where: str, extra_columns: str, vendor: str) -> str:
    p, d = ProcessInstance, ProcessDefinition
    return (
        f"SELECT {columns(p, 'p')}, d.{col(d, 'version')} AS definition_version, "
        f"d.{col(d, 'published_at')} AS definition_published_at{extra_columns} "
        f"FROM {table(p)} p JOIN {table(d)} d ON d.{col(d, 'id')} = p.{col(p, 'definition')} "
        f"WHERE {where}"
    )


def _with_definition(found: tuple | None) -> tuple[ProcessInstance | None, tuple]:
    """(instance, the columns after the definition's) of a row read by ``_instance_sql``, the
    instance given its definition's id, key, version and publication time (the spec and
    description load on first use)."""
    if found is None:
        return None, ()
    process, (version, published_at, *more) = found
    process.definition = partial(
        ProcessDefinition,
        id=process.definition_id,
        key=process.definition_key,
        version=version,
        published_at=convert(ProcessDefinition, "published_at", published_at),
    )
    return process, tuple(more)


def _for_update(sql: str) -> str:
    """FOR UPDATE of the instance row only: the joined definition row is not locked. (SQLite
    has no row locks: it serialises writers.)"""
    if not connection.features.has_select_for_update:
        return sql
    return sql + (
        " FOR UPDATE OF p" if connection.features.has_select_for_update_of else " FOR UPDATE"
    )


def _locked(sql: str, params: list) -> ProcessInstance | None:
    """Run a locking instance query; when it finds nothing, once more.

    Under READ COMMITTED, a statement that waited for the row lock re-checks its WHERE on the
    row's new version but with the joined definition row it read first: an instance that the
    other transaction moved to another version (``engine.migrate``) no longer joins and is
    skipped. Asked again, the statement sees the committed row.
    """
    found = next(iter(fetch_with(ProcessInstance, sql, params)), None)
    if found is None:
        found = next(iter(fetch_with(ProcessInstance, sql, params)), None)
    return _with_definition(found)[0]


@functools.lru_cache(maxsize=8)
def _tasks_of_task_sql(vendor: str) -> str:
    """A process's tasks (as ``tasks_of_process``) found by the id of one of them."""
    t = TaskInstance
    return (
        f"SELECT {columns(t, 't')} FROM {table(t)} t WHERE t.{col(t, 'process')} = "
        f"(SELECT s.{col(t, 'process')} FROM {table(t)} s WHERE s.{col(t, 'id')} = %s) "
        f"ORDER BY t.{col(t, 'stage_index')}, t.{col(t, 'id')}"
    )


def lock_with_tasks(process_id=None, *, task_id=None):
    """The instance ``process_id`` (or of task ``task_id``), locked, and its tasks in spec
    order, read after the lock is held: (None, []) when there is no such instance.

    Two statements: the lock, then the read of the tasks, which starts only once the lock is
    granted and so sees every change committed before it (one statement would read them with
    the snapshot it took before waiting for the lock). Sending both in one round trip
    (psycopg's pipeline) was measured and saved nothing.
    """
    p, t = ProcessInstance, TaskInstance
    if task_id is None:
        lock_sql = _for_update(_instance_sql(f"p.{col(p, 'id')} = %s"))
        key = prep(p, "id", process_id)
        tasks_sql = _tasks_sql(False, connection.vendor)
    else:
        where = (
            f"p.{col(p, 'id')} = (SELECT t.{col(t, 'process')} FROM {table(t)} t "
            f"WHERE t.{col(t, 'id')} = %s)"
        )
        lock_sql = _for_update(_instance_sql(where))
        key = task_id
        tasks_sql = _tasks_of_task_sql(connection.vendor)
    process = _locked(lock_sql, [key])
    if process is None:
        return None, []
    return process, fetch(t, tasks_sql, [key])


def lock_many_with_tasks(task_ids: list[int]) -> list[tuple[ProcessInstance, list]]:
    """The instances of ``task_ids`` locked in id order, each with its tasks in spec order: a
    worker's group commit (several processes' steps, one transaction). Two statements however
    many instances (one lock each elsewhere than PostgreSQL). Locking in id order, two workers
    that lock several never wait for each other in a circle."""
    found = []
    if connection.vendor == "postgresql":
        lock_sql, tasks_sql = _many_sql(connection.vendor)
        processes = [
            _with_definition(row)[0] for row in fetch_with(ProcessInstance, lock_sql, [task_ids])
        ]
        tasks_by: dict = {p.pk: [] for p in processes}
        for task in fetch(TaskInstance, tasks_sql, [list(tasks_by)]) if processes else ():
            tasks_by[task.process_id].append(task)
        found = [(p, tasks_by[p.pk]) for p in processes]
    return _lock_each(task_ids, found)


def _lock_each(task_ids: list[int], found: list) -> list:
    """``found`` with the instances of the ``task_ids`` it lacks, locked one at a time: every one
    elsewhere than PostgreSQL; there, one not joined after waiting for its lock (``_locked``)."""
    covered = {t.pk for _, tasks in found for t in tasks}
    for task_id in task_ids:
        if task_id not in covered:
            process, tasks = lock_with_tasks(task_id=task_id)
            covered.update(t.pk for t in tasks)
            found += [(process, tasks)] if process is not None else []
    return found


@functools.lru_cache(maxsize=2)
def _many_sql(vendor: str) -> tuple[str, str]:
    """The lock of the instances of some tasks (in id order) and the read of their tasks."""
    p, t = ProcessInstance, TaskInstance
    where = (
        f"p.{col(p, 'id')} IN (SELECT t.{col(t, 'process')} FROM {table(t)} t "
        f"WHERE t.{col(t, 'id')} = ANY(%s))"
    )
    order = f"t.{col(t, 'process')}, t.{col(t, 'stage_index')}, t.{col(t, 'id')}"
    return (
        _instance_sql(where) + f" ORDER BY p.{col(p, 'id')} FOR UPDATE OF p",
        f"SELECT {columns(t, 't')} FROM {table(t)} t WHERE t.{col(t, 'process')} = ANY(%s) "
        f"ORDER BY {order}",
    )


def _instance_where(where: str, params: list, extra_columns: str = ""):
    """For ``db.api`` only: the instance query with a grant column (kept in this package);
    (instance or None, the values of ``extra_columns``)."""
    sql = _instance_sql(where, extra_columns)
    return _with_definition(next(iter(fetch_with(ProcessInstance, sql, params)), None))


@functools.lru_cache(maxsize=8)
def _tasks_sql(people: bool, vendor: str) -> str:
    user_model = get_user_model()
    t, users = TaskInstance, table(user_model)
    uid, uname = col(user_model, "id"), col(user_model, "username")
    names = joins = ""
    if people:
        names = f", a.{uname} AS assignee_username, c.{uname} AS claimed_by_username"
        joins = (
            f" LEFT JOIN {users} a ON a.{uid} = t.{col(t, 'assignee')}"
            f" LEFT JOIN {users} c ON c.{uid} = t.{col(t, 'claimed_by')}"
        )
    return (
        f"SELECT {columns(t, 't')}{names} FROM {table(t)} t{joins} "
        f"WHERE t.{col(t, 'process')} = %s ORDER BY t.{col(t, 'stage_index')}, t.{col(t, 'id')}"
    )


def tasks_of_process(process_id, *, people: bool = False) -> list[TaskInstance]:
    """A process's tasks in spec order (stage, then creation); with ``people``, each one's
    assignee and claimer loaded with their username (for showing them)."""
    t, user_model = TaskInstance, get_user_model()
    sql = _tasks_sql(people, connection.vendor)
    rows = fetch_with(TaskInstance, sql, [prep(t, "process", process_id)])
    for task, names in rows if people else ():
        assignee, claimer = names
        if task.assignee_id is not None:
            task.assignee = partial(user_model, id=task.assignee_id, username=assignee)
        if task.claimed_by_id is not None:
            task.claimed_by = partial(user_model, id=task.claimed_by_id, username=claimer)
    return [task for task, _ in rows]


@functools.lru_cache(maxsize=4)
def _newest_published_sql(vendor: str) -> str:
    d = ProcessDefinition
    return (
        f"SELECT {columns(d, 'd')} FROM {table(d)} d "
        f"WHERE d.{col(d, 'key')} = %s AND d.{col(d, 'status')} = '{DefinitionStatus.PUBLISHED}' "
        f"ORDER BY d.{col(d, 'version')} DESC LIMIT 1"
    )


def newest_published(key: str) -> ProcessDefinition | None:
    """The newest published version of definition ``key`` (every start asks it)."""
    return next(
        iter(fetch(ProcessDefinition, _newest_published_sql(connection.vendor), [key])), None
    )


def existing_instance(definition_key: str, business_key: str, *, ever: bool):
    """The running or failed instance of this business key (at most one: a unique index), or
    with ``ever`` the newest instance of it in any state, or its ``ArchivedBusinessKey`` once
    retention archived that instance: the one check of every start (single, batch, child)."""
    sql = _existing_sql(ever, connection.vendor)
    found = next(iter(fetch(ProcessInstance, sql, [definition_key, business_key])), None)
    if found is None and ever:
        sql = _archived_sql(connection.vendor)
        found = next(iter(fetch(ArchivedBusinessKey, sql, [definition_key, business_key])), None)
    return found


@functools.lru_cache(maxsize=2)
def _archived_sql(vendor: str) -> str:
    a = ArchivedBusinessKey
    return (
        f"SELECT {columns(a, 'a')} FROM {table(a)} a "
        f"WHERE a.{col(a, 'definition_key')} = %s AND a.{col(a, 'business_key')} = %s"
    )


@functools.lru_cache(maxsize=4)
def _existing_sql(ever: bool, vendor: str) -> str:
    p = ProcessInstance
    # The states are written in, not bound, so a prepared statement's generic plan can still use
    # the partial unique index.
    states = ", ".join(f"'{state}'" for state in ACTIVE_PROCESS_STATES)
    where = "" if ever else f" AND p.{col(p, 'state')} IN ({states})"
    return (
        f"SELECT {columns(p, 'p')} FROM {table(p)} p "
        f"WHERE p.{col(p, 'definition_key')} = %s AND p.{col(p, 'business_key')} = %s{where} "
        f"ORDER BY p.{col(p, 'created_at')} DESC LIMIT 1"
    )


def purge_processes(process_ids: list) -> dict[str, int]:
    """DELETE the events, tasks and rows of closed processes that retention archived.

    The event log's append-only trigger lets exactly one DELETE through: the tables' owner saying
    ``SET LOCAL flowdesk.purge = 'on'`` in this transaction (migration 0006). Run by
    ``engine.processes_purge`` only, inside its transaction, after the export was read back.
    """
    from processes.models import Attachment, ProcessEvent, TaskExecution, TaskRound

    ids = [prep(ProcessInstance, "id", pk) for pk in process_ids]
    counts = {}
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL flowdesk.purge = 'on'")
        marks = ", ".join(["%s"] * len(ids))
        for name, model, column in (
            ("attachments", Attachment, col(Attachment, "process")),
            ("events", ProcessEvent, col(ProcessEvent, "process")),
            ("executions", TaskExecution, col(TaskExecution, "process_id")),
            ("rounds", TaskRound, col(TaskRound, "process")),
            ("tasks", TaskInstance, col(TaskInstance, "process")),
            ("processes", ProcessInstance, col(ProcessInstance, "id")),
        ):
            cursor.execute(f"DELETE FROM {table(model)} WHERE {column} IN ({marks})", ids)
            counts[name] = cursor.rowcount
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL flowdesk.purge = 'off'")
    return counts


class Existing(NamedTuple):
    """What ``existing_instances`` found for one business key."""

    id: object
    state: str
    archived: ArchivedBusinessKey | None = None  # set: the instance was archived


def existing_instances(definition_key: str, business_keys, *, ever: bool) -> dict[str, Existing]:
    """``existing_instance`` for many business keys in two queries at most: business key →
    its active instance, or with ``ever`` its newest instance in any state, or its archived key.
    """
    keys = list(business_keys)
    p = ProcessInstance
    rows = p.objects.filter(definition_key=definition_key, business_key__in=keys)
    if not ever:
        rows = rows.filter(state__in=ACTIVE_PROCESS_STATES)
    found: dict[str, Existing] = {}
    for key, pk, state in rows.order_by("business_key", "-created_at").values_list(
        "business_key", "id", "state"
    ):
        found.setdefault(key, Existing(pk, state))
    missing = [key for key in keys if key not in found]
    if ever and missing:
        for archived in ArchivedBusinessKey.objects.filter(
            definition_key=definition_key, business_key__in=missing
        ):
            found[archived.business_key] = Existing(archived.process_id, archived.state, archived)
    return found


CALL_GRAPH_LOCK = 0x666C6F77_63616C6C  # "flowcall": one advisory lock id for the call graph


def lock_call_graph() -> None:
    """Serialise the publications that change the call graph until this transaction ends, so
    two people publishing A → B and B → A at the same moment can't both miss the cycle.

    A PostgreSQL transaction-level advisory lock; SQLite writes one transaction at a time anyway.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CALL_GRAPH_LOCK])


def lock_message(name: str, correlation_key: str) -> None:
    """Serialise, until this transaction ends, a message's arrival with a task starting to wait
    for it (same name and key): one of them always sees the other, so neither is lost between
    a buffer nobody reads and a task nobody reaches. (SQLite: one writer anyway.)"""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                [f"flowdesk.message\x1f{name}\x1f{correlation_key}"],
            )
