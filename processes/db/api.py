"""What every API call runs: the token's user, one process with the caller's grant, and the
definition a caller may start."""

from __future__ import annotations

import functools

from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework.authtoken.models import Token

from processes.db.core import col, columns, prep, table
from processes.db.engine import _instance_where
from processes.db.grants import condition_params, definition_condition
from processes.models import DefinitionStatus, ProcessDefinition, ProcessInstance


def token_user(key: str):
    """The user a DRF token belongs to (active or not), or None."""
    user_model = get_user_model()
    sql = (
        f"SELECT {columns(user_model, 'u')} FROM {table(Token)} t "
        f"JOIN {table(user_model)} u ON u.{col(user_model, 'id')} = t.{col(Token, 'user')} "
        f"WHERE t.{col(Token, 'key')} = %s"
    )
    return next(iter(user_model.objects.raw(sql, [key])), None)


def process_with_grant(process_id, *, user=None, codenames: list[str] | None = None):
    """(the instance ``process_id`` or None, whether ``user`` holds one of ``codenames`` on its
    definition; ``user=None``: a superuser, always allowed), in one statement."""
    p = ProcessInstance
    params = [] if user is None else condition_params(user, codenames)
    where, extra = _grant_sql(None if user is None else tuple(codenames), connection.vendor)
    process, more = _instance_where(where, [*params, prep(p, "id", process_id)], extra)
    return process, bool(more and more[0])


@functools.lru_cache(maxsize=32)
def _grant_sql(codenames: tuple[str, ...] | None, vendor: str) -> tuple[str, str]:
    """The WHERE and the ``allowed`` column of ``process_with_grant`` (``None``: a superuser),
    built once per codenames and vendor."""
    p = ProcessInstance
    if codenames is None:
        grant = "1 = 1"
    else:
        grant = definition_condition(f"p.{col(p, 'definition_key')}", list(codenames))
    return f"p.{col(p, 'id')} = %s", f", CASE WHEN {grant} THEN 1 ELSE 0 END AS allowed"


def startable_definition(key: str, *, user=None, codenames: list[str] | None = None):
    """The newest published version of ``key`` if ``user`` holds one of ``codenames`` on it
    (``user=None``: a superuser); the spec and description stay unread until needed."""
    d = ProcessDefinition
    if user is None:
        grant, params = "1 = 1", []
    else:
        grant = definition_condition(f"d.{col(d, 'key')}", codenames)
        params = condition_params(user, codenames)
    sql = (
        f"SELECT {columns(d, 'd', exclude=('spec', 'description'))} FROM {table(d)} d "
        f"WHERE d.{col(d, 'key')} = %s AND d.{col(d, 'status')} = %s AND {grant} "
        f"ORDER BY d.{col(d, 'version')} DESC LIMIT 1"
    )
    found = list(ProcessDefinition.objects.raw(sql, [key, DefinitionStatus.PUBLISHED, *params]))
    return found[0] if found else None
