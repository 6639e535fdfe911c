"""The definition-grant check as one SQL condition: guardian's rule (user or group object
permissions on any version of a key; no global permissions), written out for the hot single-key
checks every API detail and write asks (guardian's query building cost ~3 ms a call). A test
compares it with guardian's ``get_objects_for_user`` on a generated matrix."""

from __future__ import annotations

import functools

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from guardian.models import GroupObjectPermission, UserObjectPermission

from processes.db.core import col, table
from processes.models import ProcessDefinition


@functools.lru_cache(maxsize=64)
def _condition(key_sql: str, n_codes: int) -> str:
    """SQL true when the user (two ``%s``) holds one of ``n_codes`` codenames on the key
    ``key_sql`` names (internal: ``key_sql`` is a column or ``%s`` chosen in this package)."""
    d, uop, gop = ProcessDefinition, UserObjectPermission, GroupObjectPermission
    perm, ct = Permission, ContentType
    user_groups = get_user_model().groups.through
    codes = ", ".join(["%s"] * n_codes)

    def granted(model, who: str, join: str) -> str:
        return (
            f"SELECT o.{col(model, 'object_pk')} FROM {table(model)} o {join} "
            f"JOIN {table(perm)} pm ON pm.{col(perm, 'id')} = o.{col(model, 'permission')} "
            f"JOIN {table(ct)} ct ON ct.{col(ct, 'id')} = pm.{col(perm, 'content_type')} "
            f"WHERE {who} = %s AND o.{col(model, 'content_type')} = ct.{col(ct, 'id')} "
            f"AND ct.{col(ct, 'app_label')} = 'processes' "
            f"AND ct.{col(ct, 'model')} = 'processdefinition' "
            f"AND pm.{col(perm, 'codename')} IN ({codes})"
        )

    by_user = granted(uop, f"o.{col(uop, 'user')}", "")
    by_group = granted(
        gop,
        f"ug.{col(user_groups, 'user')}",
        f"JOIN {table(user_groups)} ug ON ug.{col(user_groups, 'group')} = o.{col(gop, 'group')}",
    )
    return (
        f"EXISTS (SELECT 1 FROM {table(d)} g_d WHERE g_d.{col(d, 'key')} = {key_sql} "
        f"AND CAST(g_d.{col(d, 'id')} AS VARCHAR(255)) IN ({by_user} UNION ALL {by_group}))"
    )


def condition_params(user, codenames: list[str]) -> list:
    return [user.pk, *codenames, user.pk, *codenames]


def definition_condition(alias_column: str, codenames: list[str]) -> str:
    """Internal to ``processes.db``: the condition on a key column of a query built here."""
    return _condition(alias_column, len(codenames))


def has_grant(user, codenames: list[str], definition_key: str) -> bool:
    """Whether ``user`` holds one of ``codenames`` on some version of ``definition_key``."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 1 WHERE {_condition('%s', len(codenames))}",
            [definition_key, *condition_params(user, codenames)],
        )
        return cursor.fetchone() is not None
