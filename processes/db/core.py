"""The helpers of the fixed SQL: names from ``_meta``, and INSERT/UPDATE of model instances.

Building a query through the ORM costs more CPU than running it on a local PostgreSQL (about
1 ms of Python per query against 0.2–0.5 ms in the database). The few statements that run on
every engine step and every API call are written out with these helpers; reads go through
``Model.objects.raw()``, which still applies each field's database converters, and writes use
each field's own ``get_db_prep_save``, so rows and instances are the ones the ORM would give.
State still changes only through the models' django-fsm transitions, in the engine.
"""

from __future__ import annotations

import functools
import json

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections
from django.db.models import Model
from django.db.models.base import DEFERRED

try:
    from psycopg.pq import Format

    BINARY = Format.BINARY
except ImportError:  # no psycopg: SQLite only
    BINARY = None

MAX_DB_INT = 2**63 - 1  # the largest id a bigint column holds; a larger one is "not found"


def parse_id(text) -> int | None:
    """``text`` as a row id (1 to ``MAX_DB_INT``), or None when it can't be one: not ASCII
    digits, or too long (Python refuses ``int()`` of more than 4,300 digits)."""
    if not isinstance(text, str) or not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if 0 < value <= MAX_DB_INT else None


def columns(model: type[Model], alias: str, *, exclude: tuple[str, ...] = ()) -> str:
    """The concrete columns of ``model`` (those not in ``exclude`` stay deferred), qualified by
    ``alias``, in field order."""
    quote = connection.ops.quote_name
    return ", ".join(
        f"{alias}.{quote(f.column)}" for f in model._meta.concrete_fields if f.name not in exclude
    )


def table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def col(model: type[Model], field_name: str) -> str:
    """The quoted column of ``model.field_name`` (a foreign key's ``_id`` column for a relation)."""
    return connection.ops.quote_name(model._meta.get_field(field_name).column)


def prep(model: type[Model], field_name: str, value):
    """``value`` as the database stores ``model.field_name`` (UUIDs are text on SQLite)."""
    return model._meta.get_field(field_name).get_db_prep_value(value, connection)


def convert(model: type[Model], field_name: str, value):
    """A value read outside the model's own columns, converted as the ORM would (SQLite hands
    back datetimes as text, for one)."""
    field = model._meta.get_field(field_name)
    column = field.get_col(model._meta.db_table)
    for converter in connection.ops.get_db_converters(column) + field.get_db_converters(connection):
        value = converter(value, column, connection)
    return value


def partial(model: type[Model], **values) -> Model:
    """An instance with only ``values`` loaded; any other field loads on first access."""
    row = [values.get(f.attname, DEFERRED) for f in model._meta.concrete_fields]
    return model.from_db(connection.alias, None, row)


MAX_PARAMS = 65_535  # PostgreSQL's limit of bind parameters per statement


def insert(objs: list[Model]) -> None:
    """INSERT ``objs`` (rows of one model) and set their primary keys: one statement, or one
    per batch when the rows' parameters would pass PostgreSQL's 65,535.

    What ``bulk_create`` does for plain rows (neither sends signals), written out directly:
    for the handful of rows one engine event writes, Django's insert compiler cost several
    times the CPU PostgreSQL took to store them.
    """
    if not objs:
        return
    width = max(1, len(objs[0]._meta.concrete_fields))
    batch = max(1, MAX_PARAMS // width)
    for start in range(0, len(objs), batch):
        _insert(objs[start : start + batch])


def _insert(objs: list[Model]) -> None:
    model = type(objs[0])
    meta = model._meta
    returning = meta.pk.db_returning  # an auto-increment id comes back from the database
    if returning and not connection.features.can_return_rows_from_bulk_insert:
        for obj in objs:  # SQLite before 3.35: one row at a time gives each its id
            obj.save(force_insert=True)
        return
    fields = [f for f in meta.concrete_fields if not (returning and f is meta.pk)]
    if connection.vendor == "postgresql" and _json_columns(model) is not None:
        sql, params = _json_insert_sql(model), [_json_rows(model, objs)]
    elif connection.vendor == "postgresql":
        sql, params = _insert_unnest(model, fields, objs)
    else:
        params = []
        for obj in objs:
            obj._prepare_related_fields_for_save(operation_name="bulk_create")  # as bulk_create
            params.extend(f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields)
        quote = connection.ops.quote_name
        row = "(" + ", ".join(["%s"] * len(fields)) + ")"
        sql = (
            f"INSERT INTO {table(model)} ({', '.join(quote(f.column) for f in fields)}) "
            f"VALUES {', '.join([row] * len(objs))}"
        )
    if returning:
        sql += f" RETURNING {connection.ops.quote_name(meta.pk.column)}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        ids = cursor.fetchall() if returning else None
    for index, obj in enumerate(objs):
        if ids is not None:
            obj.pk = ids[index][0]
        obj._state.adding = False
        obj._state.db = connection.alias


def _insert_unnest(model, fields, objs) -> tuple[str, list]:
    """PostgreSQL: ``INSERT ... SELECT FROM unnest(one array per column)`` in the rows' order.

    The statement's text and parameter count stay the same whatever the number of rows, so
    psycopg caches its conversion and prepares it (a VALUES list of 8 task rows has ~200
    parameters: neither happened, and converting it cost more than PostgreSQL took to run it).
    """
    rows = []
    for obj in objs:
        obj._prepare_related_fields_for_save(operation_name="bulk_create")  # as bulk_create
        rows.append([f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields])
    params = [list(column) for column in zip(*rows, strict=True)]
    return _unnest_sql(model, tuple(fields)), params


@functools.lru_cache(maxsize=32)
def _unnest_sql(model, fields) -> str:
    quote = connection.ops.quote_name
    names = [f"c{i}" for i in range(len(fields))]
    arrays = ", ".join(f"%s::{_array_type(f)}" for f in fields)
    return (
        f"INSERT INTO {table(model)} ({', '.join(quote(f.column) for f in fields)}) "
        f"SELECT {', '.join(names)} FROM unnest({arrays}) WITH ORDINALITY "
        f"AS u({', '.join(names)}, n) ORDER BY n"
    )


def update(obj: Model, field_names: list[str]) -> None:
    """UPDATE ``field_names`` of ``obj``'s row: ``save(update_fields=...)`` written out (no
    signal is connected to the engine's models, and the engine updates rows it has locked)."""
    meta = obj._meta
    fields = [meta.get_field(name) for name in field_names]
    quote = connection.ops.quote_name
    params = [f.get_db_prep_save(f.pre_save(obj, False), connection) for f in fields]
    params.append(meta.pk.get_db_prep_value(obj.pk, connection))
    sql = (
        f"UPDATE {table(type(obj))} SET {', '.join(f'{quote(f.column)} = %s' for f in fields)} "
        f"WHERE {quote(meta.pk.column)} = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if cursor.rowcount != 1:
            raise DatabaseError(f"{meta.label} {obj.pk}: the UPDATE matched {cursor.rowcount} rows")


def _array_type(field) -> str:
    """The PostgreSQL array type of ``field``'s column (``varchar(n)[]``, ``jsonb[]``...)."""
    target = field.target_field if field.is_relation else field
    return f"{target.rel_db_type(connection) if field.is_relation else field.db_type(connection)}[]"


def write(updates: list[tuple[Model, list[str]]], inserts: list[Model]) -> None:
    """One engine event's writes in one statement: the UPDATEs of ``updates`` (instance, fields)
    and the INSERT of ``inserts`` (rows of one model, given their ids), as data-modifying CTEs.

    The same rows and checks as ``update`` and ``insert`` one by one (each UPDATE must match its
    row), in one round trip instead of one per row: the statements of a step are most of its
    cost. The statement text is built once per shape (which columns of which rows); the new rows
    travel as one JSON document (``_json_rows``), not one array per column. PostgreSQL only;
    elsewhere they run one by one.
    """
    updates = [(obj, field_names) for obj, field_names in updates if field_names]
    conn = connections[DEFAULT_DB_ALIAS]  # the real wrapper: the proxy costs a lookup per call
    if conn.vendor != "postgresql":
        for obj, field_names in updates:
            update(obj, field_names)
        insert(inserts)
        return
    params = []
    shape = []
    for obj, field_names in updates:
        model = type(obj)
        names = tuple(field_names)
        fields = _update_fields(model, names)
        params.extend(f.get_db_prep_save(f.pre_save(obj, False), conn) for f in fields)
        params.append(model._meta.pk.get_db_prep_value(obj.pk, conn))
        shape.append((model, names))
    model = type(inserts[0]) if inserts else None
    json_rows = model is not None and _json_columns(model) is not None
    if model is not None:
        if json_rows:
            params.append(_json_rows(model, inserts))
        else:
            fields = [f for f in model._meta.concrete_fields if f is not model._meta.pk]
            params.extend(_insert_unnest(model, fields, inserts)[1])
    if not shape and model is None:
        return
    sql = _write_sql(tuple(shape), model, json_rows)
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchone()
    for (obj, _), matched in zip(updates, found, strict=False):
        if matched != 1:
            raise DatabaseError(f"{obj._meta.label} {obj.pk}: the UPDATE matched {matched} rows")
    if inserts:
        for obj, pk in zip(inserts, found[-1], strict=True):
            obj.pk = pk
            obj._state.adding = False
            obj._state.db = conn.alias


@functools.lru_cache(maxsize=256)
def _update_fields(model: type[Model], names: tuple[str, ...]) -> list:
    return [model._meta.get_field(name) for name in names]


@functools.lru_cache(maxsize=512)
def _write_sql(shape: tuple, model: type[Model] | None, json_rows: bool) -> str:
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
        meta = model._meta
        if json_rows:
            insert_sql = _json_insert_sql(model)
        else:
            fields = tuple(f for f in meta.concrete_fields if f is not meta.pk)
            insert_sql = _unnest_sql(model, fields)
        parts.append(f"i AS ({insert_sql} RETURNING {quote(meta.pk.column)})")
        # ids in insertion order, as bulk_create reads them from a multi-row INSERT
        counts.append(f"ARRAY(SELECT {quote(meta.pk.column)} FROM i)")
    return f"WITH {', '.join(parts)} SELECT {', '.join(counts)}"


def _json_kind(field) -> str | None:
    """How ``_json_rows`` writes a value of ``field`` (None: a type it does not know)."""
    target = field.target_field if field.is_relation else field
    internal = target.get_internal_type()
    if internal == "JSONField":
        return "json" if field.encoder is None else None
    if internal == "UUIDField":
        return "uuid"
    if internal == "DateTimeField":
        return "datetime"
    if internal in (
        "CharField", "TextField", "SlugField", "IntegerField", "BigIntegerField",
        "PositiveIntegerField", "PositiveSmallIntegerField", "SmallIntegerField", "BooleanField",
        "AutoField", "BigAutoField",
    ):  # fmt: skip
        return "plain"
    return None


@functools.lru_cache(maxsize=32)
def _json_columns(model: type[Model]):
    """(field, kind) of every column an INSERT of ``model`` writes, or None when one of them
    has a type ``_json_rows`` does not write (that model uses the column arrays instead)."""
    meta = model._meta
    found = []
    for field in meta.concrete_fields:
        if field is meta.pk and meta.pk.db_returning:
            continue
        kind = _json_kind(field)
        if kind is None or (field.is_relation and kind == "json"):
            return None
        found.append((field, kind))
    return tuple(found)


def _json_rows(model: type[Model], objs: list[Model]) -> str:
    """The new rows as one JSON array of arrays (``json.dumps`` is C; dumping a dozen arrays
    through the driver was most of the statement's client CPU)."""
    columns = _json_columns(model)
    rows = []
    for obj in objs:
        obj._prepare_related_fields_for_save(operation_name="bulk_create")  # as bulk_create
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
    meta = model._meta
    quote = connection.ops.quote_name
    fields = [f for f in meta.concrete_fields if not (f is meta.pk and meta.pk.db_returning)]
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


_CONVERTERS: dict[tuple, list] = {}


def _row_converters(model: type[Model], binary: bool = False) -> list:
    """(index, converters) of each concrete field of ``model`` that has any, computed once per
    model and connection vendor: what ``raw()`` works out again on every query. ``binary``:
    the rows come in PostgreSQL's binary format, whose ``jsonb`` the driver has already decoded
    (a JSON field without a decoder of its own then needs nothing more)."""
    key = (model, connection.vendor, binary)
    found = _CONVERTERS.get(key)
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
        _CONVERTERS[key] = found
    return found


def fetch(model: type[Model], sql: str, params, extra: tuple[str, ...] = ()) -> list[Model]:
    """Instances of ``model`` from ``sql``, which selects ``columns(model, ...)`` and then one
    column per name in ``extra`` (set on each instance as read, as ``raw()`` sets annotations).

    ``Model.objects.raw()`` without its per-query work (matching columns to fields by name,
    looking up converters): the rows and instances are the same, at a third of the CPU. On
    PostgreSQL the rows come in binary format: the driver's binary loaders (timestamps, jsonb)
    cost about half of parsing text.
    """
    conn = connections[DEFAULT_DB_ALIAS]
    binary = conn.vendor == "postgresql"
    with conn.cursor() as cursor:
        if binary:
            cursor.cursor.format = BINARY  # this cursor's results only
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return _instances(model, rows, extra, conn, binary)


def _instances(model, rows, extra, conn, binary) -> list[Model]:
    n = len(model._meta.concrete_fields)
    converters = _row_converters(model, binary)
    found = []
    for row in rows:
        values = list(row[:n])
        for index, column, funcs in converters:
            value = values[index]
            for func in funcs:
                value = func(value, column, conn)
            values[index] = value
        obj = model.from_db(conn.alias, None, values)
        for name, value in zip(extra, row[n:], strict=True):
            setattr(obj, name, value)
        found.append(obj)
    return found


def copy_in(objs: list[Model]) -> None:
    """INSERT many rows of one model through COPY and set their primary keys: what ``insert``
    does, for the thousands of rows of a batch start.

    A multi-row INSERT of thousands of parameters costs more in the driver (it parses the
    statement for its placeholders) than in PostgreSQL; COPY has no statement to parse. An
    auto-increment id is drawn from the column's sequence first, in one query. Other databases
    fall back to ``insert`` in slices.
    """
    if not objs:
        return
    model = type(objs[0])
    meta = model._meta
    conn = connections[connection.alias]  # the real wrapper: the proxy costs a lookup per call
    fields = list(meta.concrete_fields)
    if conn.vendor != "postgresql":
        per = max(1, 30_000 // len(fields))
        for start in range(0, len(objs), per):
            insert(objs[start : start + per])
        return
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
                obj._prepare_related_fields_for_save(operation_name="bulk_create")
                copy.write_row([f.get_db_prep_save(f.pre_save(obj, True), conn) for f in fields])
    for obj in objs:
        obj._state.adding = False
        obj._state.db = conn.alias
