"""The names the fixed SQL is written with, and the writes that go through the public ORM.

Table and column names come from the models' ``_meta``, never from outside. Rows are created
with ``bulk_create`` and updated with ``QuerySet.update``, except on the engine's hot path,
whose statements live in ``processes.db.internals`` (the one module below the ORM).
"""

from __future__ import annotations

import functools

from django.db import DatabaseError, connection
from django.db.models import Model

MAX_DB_INT = 2**63 - 1  # the largest id a bigint column holds; a larger one is "not found"


def parse_id(text) -> int | None:
    """``text`` as a row id (1 to ``MAX_DB_INT``), or None when it can't be one: not ASCII
    digits, or too long (Python refuses ``int()`` of more than 4,300 digits)."""
    if not isinstance(text, str) or not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if 0 < value <= MAX_DB_INT else None


# The names below are asked for dozens of times a request and never change while a process
# runs: each is worked out once (both databases the product runs on quote names alike).


@functools.lru_cache(maxsize=512)
def columns(model: type[Model], alias: str, *, exclude: tuple[str, ...] = ()) -> str:
    """The concrete columns of ``model`` (those not in ``exclude`` stay deferred), qualified by
    ``alias``, in field order."""
    quote = connection.ops.quote_name
    return ", ".join(
        f"{alias}.{quote(f.column)}" for f in model._meta.concrete_fields if f.name not in exclude
    )


@functools.lru_cache(maxsize=256)
def table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


@functools.lru_cache(maxsize=2048)
def col(model: type[Model], field_name: str) -> str:
    """The quoted column of ``model.field_name`` (a foreign key's ``_id`` column for a relation)."""
    return connection.ops.quote_name(model._meta.get_field(field_name).column)


def prep(model: type[Model], field_name: str, value):
    """``value`` as the database stores ``model.field_name`` (UUIDs are text on SQLite)."""
    return model._meta.get_field(field_name).get_db_prep_value(value, connection)


def create_rows(objs: list[Model]) -> None:
    """INSERT ``objs`` (rows of one model) with ``bulk_create``, which sets their keys."""
    if objs:
        type(objs[0])._base_manager.bulk_create(objs)


def update_row(obj: Model, field_names: list[str]) -> None:
    """UPDATE ``field_names`` of ``obj``'s row with ``QuerySet.update``: ``save(update_fields=
    ...)`` without signals (none is connected to the engine's models, and the engine updates
    rows it has locked). A row that is gone is an error, as ``save`` says."""
    meta = obj._meta
    values = {}
    for name in field_names:
        field = meta.get_field(name)
        values[field.attname] = field.pre_save(obj, False)
    matched = type(obj)._base_manager.filter(pk=obj.pk).update(**values)
    if matched != 1:
        raise DatabaseError(f"{meta.label} {obj.pk}: the UPDATE matched {matched} rows")
