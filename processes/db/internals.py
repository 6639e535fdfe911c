"""The engine's hot statements, below the ORM: the one module that relies on Django beyond its
public API. Everything else in Flowdesk writes through ``bulk_create``, ``QuerySet.update``
and ``select_for_update(of=...)``.

Why they stay (bench/engine.py side by side, docs/performance.md 2026-12-07): the public ORM
on the lock, the task read and the writes of every engine event took two thirds of the
throughput (6 statements per step instead of 3, about 2 ms more CPU per step); the lock and
task read through ``Model.objects.raw()`` alone cost about 8% of a process's CPU. Each piece
is over the 5% the architecture allows (docs/architecture/engine.md, "Below the ORM").

What they rely on, pinned by ``tests/processes/test_db_internals.py`` (run it first at every
Django upgrade, and read the release notes for these names):

- ``Model.from_db(alias, None, values)`` with ``django.db.models.DEFERRED`` for a column not
  read (documented under "Customizing model loading"), and ``_state.adding`` / ``_state.db``;
- ``Field.get_col``, ``connection.ops.get_db_converters`` and ``Field.get_db_converters``: the
  converters ``raw()`` applies to a column read (``fetch``, ``convert``);
- ``Field.pre_save`` and ``Field.get_db_prep_save`` give the value the ORM would write;
- ``Model._meta.concrete_fields`` lists the columns in the order ``from_db`` expects;
- Django's ``CursorWrapper.cursor`` is psycopg's own cursor: ``fetch`` sets its ``format`` to
  binary for its results (the driver's binary loaders of timestamps and jsonb: a task read
  costs ~30% less CPU than in text, measured in one process), and ``copy_in`` uses its
  ``copy`` (batches only).

The statements themselves are plain PostgreSQL: data-modifying CTEs (``write``), an INSERT from
``jsonb_array_elements`` (``insert``), COPY (``copy_in``). Other databases take the ORM's path.
"""

from __future__ import annotations

import functools
import json

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections
from django.db.models import DEFERRED, Model

from processes.db.core import create_rows, table, update_row

try:
    from psycopg.pq import Format

    BINARY = Format.BINARY
except ImportError:  # no psycopg: SQLite only
    BINARY = None


def partial(model: type[Model], **values) -> Model:
    """An instance with only ``values`` loaded; any other field loads on first access."""
    row = [values.get(f.attname, DEFERRED) for f in model._meta.concrete_fields]
    return model.from_db(connection.alias, None, row)


def convert(model: type[Model], field_name: str, value):
    """A value read outside the model's own columns, converted as the ORM would (SQLite hands
    back datetimes as text, for one)."""
    field = model._meta.get_field(field_name)
    column = field.get_col(model._meta.db_table)
    for converter in connection.ops.get_db_converters(column) + field.get_db_converters(connection):
        value = converter(value, column, connection)
    return value


_CONVERTERS: dict[tuple, list] = {}


def _row_converters(model: type[Model], vendor: str, binary: bool = False) -> list:
    """(index, column, converters) of each concrete field of ``model`` that has any, computed
    once per model and vendor: what ``raw()`` works out again on every query."""
    found = _CONVERTERS.get((model, vendor, binary))
    if found is None:
        found = []
        for index, field in enumerate(model._meta.concrete_fields):
            if binary and field.get_internal_type() == "JSONField" and field.decoder is None:
                continue
            column = field.get_col(model._meta.db_table)
            converters = connection.ops.get_db_converters(column) + field.get_db_converters(
                connection
            )
            if converters:
                found.append((index, column, converters))
        _CONVERTERS[(model, vendor, binary)] = found
    return found


def fetch(model: type[Model], sql: str, params) -> list[Model]:
    """Instances of ``model`` from ``sql``, which selects ``core.columns(model, ...)``.

    ``Model.objects.raw()`` without its per-query work (matching columns to fields by name,
    looking up converters): the same rows and instances at half the CPU. On PostgreSQL the rows
    come in binary format, whose ``jsonb`` the driver has already decoded (a JSON field without
    a decoder of its own then needs no converter).
    """
    return [obj for obj, _ in fetch_with(model, sql, params)]


def fetch_with(model: type[Model], sql: str, params) -> list[tuple[Model, tuple]]:
    """``fetch``, for a ``sql`` that selects more columns after the model's: (instance, the
    values of those columns) per row. They are handed back, never set on the instance (a grant
    read with a row is the caller's value, not the row's)."""
    conn = connections[DEFAULT_DB_ALIAS]  # the real wrapper: the proxy costs a lookup per call
    binary = conn.vendor == "postgresql"
    with conn.cursor() as cursor:
        if binary:
            cursor.cursor.format = BINARY
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    n = len(model._meta.concrete_fields)
    converters = _row_converters(model, conn.vendor, binary)
    found = []
    for row in rows:
        values = list(row[:n])
        for index, column, funcs in converters:
            value = values[index]
            for func in funcs:
                value = func(value, column, conn)
            values[index] = value
        found.append((model.from_db(conn.alias, None, values), row[n:]))
    return found


def _relate(obj: Model, model: type[Model]) -> None:
    """What ``bulk_create`` checks first: a related instance assigned before it had a key gives
    its key now, and one that still has none is refused (no row with a silent NULL)."""
    for field in _relations(model):
        if getattr(obj, field.attname) is None:
            related = getattr(obj, field.name)  # an empty key reads no row
            if related is not None:
                if related.pk is None:
                    raise ValueError(
                        f"insert() prohibited to prevent data loss due to unsaved related "
                        f"object '{field.name}'."
                    )
                setattr(obj, field.name, related)  # assigned again: its key is set now


@functools.lru_cache(maxsize=32)
def _relations(model: type[Model]) -> tuple:
    return tuple(f for f in model._meta.concrete_fields if f.many_to_one or f.one_to_one)


def _mark_saved(objs: list[Model], alias: str) -> None:
    for obj in objs:
        obj._state.adding = False
        obj._state.db = alias


def insert(objs: list[Model]) -> None:
    """INSERT ``objs`` (rows of one model) and set their primary keys, as ``bulk_create`` does:
    on PostgreSQL one statement whose rows travel as one JSON document (``json.dumps`` is C;
    Django's insert compiler cost several times the CPU PostgreSQL took to store them). A model
    with a column type ``_json_rows`` doesn't write, and other databases, use ``bulk_create``.
    """
    if not objs:
        return
    model = type(objs[0])
    conn = connections[DEFAULT_DB_ALIAS]
    if conn.vendor != "postgresql" or _json_columns(model) is None:
        create_rows(objs)
        return
    pk = model._meta.pk
    sql = _json_insert_sql(model)
    if pk.db_returning:
        sql += f" RETURNING {conn.ops.quote_name(pk.column)}"
    with conn.cursor() as cursor:
        cursor.execute(sql, [_json_rows(model, objs)])
        ids = cursor.fetchall() if pk.db_returning else None
    for index, obj in enumerate(objs if ids is not None else ()):
        obj.pk = ids[index][0]
    _mark_saved(objs, conn.alias)


def write(updates: list[tuple[Model, list[str]]], inserts: list[Model]) -> None:
    """One engine event's writes in one statement: the UPDATEs of ``updates`` (instance, fields)
    and the INSERT of ``inserts`` (rows of one model, given their ids), as data-modifying CTEs.

    The same rows and checks as ``core.update_row`` and ``insert`` one by one (each UPDATE must
    match its row), in one round trip instead of one per row: the statements of a step are most
    of its cost. The statement text is built once per shape (which columns of which rows).
    Elsewhere than PostgreSQL, or for rows ``insert`` writes with ``bulk_create``, one by one.
    """
    updates = [(obj, field_names) for obj, field_names in updates if field_names]
    conn = connections[DEFAULT_DB_ALIAS]
    model = type(inserts[0]) if inserts else None
    if conn.vendor != "postgresql" or (model is not None and _json_columns(model) is None):
        for obj, field_names in updates:
            update_row(obj, field_names)
        insert(inserts)
        return
    params = []
    shape = []
    for obj, field_names in updates:
        names = tuple(field_names)
        params.extend(f.get_db_prep_save(f.pre_save(obj, False), conn) for f in _fields(obj, names))
        params.append(obj._meta.pk.get_db_prep_value(obj.pk, conn))
        shape.append((type(obj), names))
    if model is not None:
        params.append(_json_rows(model, inserts))
    if not shape and model is None:
        return
    with conn.cursor() as cursor:
        cursor.execute(_write_sql(tuple(shape), model), params)
        found = cursor.fetchone()
    for (obj, _), matched in zip(updates, found, strict=False):
        if matched != 1:
            raise DatabaseError(f"{obj._meta.label} {obj.pk}: the UPDATE matched {matched} rows")
    if inserts:
        for obj, pk in zip(inserts, found[-1], strict=True):
            obj.pk = pk
        _mark_saved(inserts, conn.alias)


def _fields(obj: Model, names: tuple[str, ...]) -> list:
    return _update_fields(type(obj), names)


@functools.lru_cache(maxsize=256)
def _update_fields(model: type[Model], names: tuple[str, ...]) -> list:
    return [model._meta.get_field(name) for name in names]


@functools.lru_cache(maxsize=512)
def _write_sql(shape: tuple, model: type[Model] | None) -> str:
    """The text of ``write``'s statement for these UPDATEs ((model, field names) each) and an
    INSERT of ``model`` rows (or none)."""
    quote = connection.ops.quote_name
    parts, counts = [], []
    for index, (updated, names) in enumerate(shape):
        meta = updated._meta
        columns_set = ", ".join(f"{quote(meta.get_field(n).column)} = %s" for n in names)
        parts.append(
            f"u{index} AS (UPDATE {table(updated)} SET {columns_set} "
            f"WHERE {quote(meta.pk.column)} = %s RETURNING 1)"
        )
        counts.append(f"(SELECT count(*) FROM u{index})")
    if model is not None:
        pk = quote(model._meta.pk.column)
        parts.append(f"i AS ({_json_insert_sql(model)} RETURNING {pk})")
        # ids in insertion order, as bulk_create reads them from a multi-row INSERT
        counts.append(f"ARRAY(SELECT {pk} FROM i)")
    return f"WITH {', '.join(parts)} SELECT {', '.join(counts)}"


_PLAIN = {
    "CharField", "TextField", "SlugField", "IntegerField", "BigIntegerField",
    "PositiveIntegerField", "PositiveSmallIntegerField", "SmallIntegerField", "BooleanField",
    "AutoField", "BigAutoField",
}  # fmt: skip


def _json_kind(field) -> str | None:
    """How ``_json_rows`` writes a value of ``field`` (None: a type it does not know)."""
    target = field.target_field if field.is_relation else field
    internal = target.get_internal_type()
    if internal == "JSONField":
        return "json" if field.encoder is None and not field.is_relation else None
    if internal == "UUIDField":
        return "uuid"
    if internal == "DateTimeField":
        return "datetime"
    return "plain" if internal in _PLAIN else None


@functools.lru_cache(maxsize=32)
def _json_columns(model: type[Model]):
    """(field, kind) of every column an INSERT of ``model`` writes, or None when one of them
    has a type ``_json_rows`` does not write (that model's rows go through ``bulk_create``)."""
    meta = model._meta
    found = []
    for field in meta.concrete_fields:
        if field is meta.pk and meta.pk.db_returning:
            continue
        kind = _json_kind(field)
        if kind is None:
            return None
        found.append((field, kind))
    return tuple(found)


def _json_rows(model: type[Model], objs: list[Model]) -> str:
    """The new rows as one JSON array of arrays (dumping a dozen arrays through the driver was
    most of the statement's client CPU)."""
    columns = _json_columns(model)
    rows = []
    for obj in objs:
        _relate(obj, model)
        row = []
        for field, kind in columns:
            value = field.pre_save(obj, True)
            if value is not None and kind == "uuid":
                value = str(value)
            elif value is not None and kind == "datetime":
                value = value.isoformat()
            row.append(value)
        rows.append(row)
    return json.dumps(rows)


@functools.lru_cache(maxsize=32)
def _json_insert_sql(model: type[Model]) -> str:
    """``INSERT ... SELECT`` of the rows ``_json_rows`` wrote, in their order."""
    quote = connection.ops.quote_name
    fields = [field for field, _ in _json_columns(model)]
    names = ", ".join(quote(f.column) for f in fields)
    values = ", ".join(
        f"(r.v->>{i})::{_db_type(f)}"
        if _json_kind(f) != "json"
        else f"NULLIF(r.v->{i}, 'null'::jsonb)"  # None is SQL NULL, as the ORM writes it
        for i, f in enumerate(fields)
    )
    return (
        f"INSERT INTO {table(model)} ({names}) SELECT {values} "
        f"FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS r(v, n) ORDER BY r.n"
    )


def _db_type(field) -> str:
    """The cast of a JSON text value: ``text`` for strings, so that the INSERT's own assignment
    checks their length (an explicit cast to ``varchar(n)`` would cut them silently)."""
    target = field.target_field if field.is_relation else field
    if target.get_internal_type() in ("CharField", "SlugField", "TextField"):
        return "text"
    return target.rel_db_type(connection) if field.is_relation else field.db_type(connection)


def copy_in(objs: list[Model]) -> None:
    """INSERT many rows of one model through COPY and set their primary keys: ``insert`` for
    the thousands of rows of a batch start (a multi-row INSERT of thousands of parameters costs
    more in the driver, which parses the statement, than in PostgreSQL). An auto-increment id is
    drawn from the column's sequence first, in one query. Elsewhere: ``bulk_create``."""
    if not objs:
        return
    model = type(objs[0])
    meta = model._meta
    conn = connections[DEFAULT_DB_ALIAS]
    if conn.vendor != "postgresql":
        create_rows(objs)
        return
    fields = list(meta.concrete_fields)
    with conn.cursor() as cursor:
        if meta.pk.db_returning:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [meta.db_table, meta.pk.column, len(objs)],
            )
            for obj, (pk,) in zip(objs, cursor.fetchall(), strict=True):
                obj.pk = pk
        quote = conn.ops.quote_name
        sql = f"COPY {table(model)} ({', '.join(quote(f.column) for f in fields)}) FROM STDIN"
        # the driver's cursor: Django's own wrapper has no COPY, so map its errors here
        with conn.wrap_database_errors, cursor.cursor.copy(sql) as copy:
            for obj in objs:
                _relate(obj, model)
                copy.write_row([f.get_db_prep_save(f.pre_save(obj, True), conn) for f in fields])
    _mark_saved(objs, conn.alias)
