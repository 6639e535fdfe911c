"""The helpers of the fixed SQL: names from ``_meta``, and INSERT/UPDATE of model instances.

Building a query through the ORM costs more CPU than running it on a local PostgreSQL (about
1 ms of Python per query against 0.2–0.5 ms in the database). The few statements that run on
every engine step and every API call are written out with these helpers; reads go through
``Model.objects.raw()``, which still applies each field's database converters, and writes use
each field's own ``get_db_prep_save``, so rows and instances are the ones the ORM would give.
State still changes only through the models' django-fsm transitions, in the engine.
"""

from __future__ import annotations

from django.db import DatabaseError, connection
from django.db.models import Model
from django.db.models.base import DEFERRED

MAX_DB_INT = 2**63 - 1  # the largest id a bigint column holds; a larger one is "not found"


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
        sql += f" RETURNING {quote(meta.pk.column)}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        ids = cursor.fetchall() if returning else None
    for index, obj in enumerate(objs):
        if ids is not None:
            obj.pk = ids[index][0]
        obj._state.adding = False
        obj._state.db = connection.alias


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
