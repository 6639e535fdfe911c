"""Seam the engine calls (inside its transaction) when a human task opens, moves or closes.

Who may act on an open human task is stored as django-guardian object permissions
(``processes.act_on_task``) in the direct-foreign-key tables of ``tasks_inbox.models``:

- the task's candidate role (a Django group of that name, created when missing) gets a group
  permission: every member sees the task and may claim or decide it while nobody else claims it;
- the task's assignee (from the spec's ``assignee`` or a delegation) and its claimant get a user
  permission, so it is theirs even when they are not in the role.

When the task closes every row goes: closed tasks are read through their columns (role, decider).
The engine saves the task after these calls; only its primary key and fields are needed here.
"""

from __future__ import annotations

import logging

from django.contrib.auth.models import Group, Permission
from django.db import transaction

from tasks_inbox.models import TaskGroupObjectPermission, TaskUserObjectPermission

logger = logging.getLogger(__name__)

CODENAME = "act_on_task"
PERMISSION = f"processes.{CODENAME}"

_permission_ids: dict[str, int] = {}


def permission_id() -> int:
    """The id of ``processes.act_on_task`` (cached; the cache is cleared after migrate/flush)."""
    from django.db import connection

    key = connection.settings_dict["NAME"]
    if key not in _permission_ids:
        _permission_ids[key] = Permission.objects.values_list("pk", flat=True).get(
            content_type__app_label="processes", codename=CODENAME
        )
    return _permission_ids[key]


def clear_cache(**kwargs) -> None:
    _permission_ids.clear()


def role_group(name: str) -> Group:
    """The Django group of a role, created when a spec names one nobody created yet."""
    group = Group.objects.filter(name=name).first()
    if group is None:
        # get_or_create retries the read in a savepoint when a concurrent insert wins the race.
        with transaction.atomic():
            group, _ = Group.objects.get_or_create(name=name)
    return group


def _sync(task) -> None:
    if task.pk is None:  # not stored yet: nothing can point at it
        logger.warning("permission sync skipped for unsaved task %s", task.name)
        return
    perm = permission_id()
    users = {uid for uid in (task.assignee_id, task.claimed_by_id) if uid is not None}
    groups = {role_group(task.candidate_role).pk} if task.candidate_role else set()

    have_users = set(
        TaskUserObjectPermission.objects.filter(
            content_object_id=task.pk, permission_id=perm
        ).values_list("user_id", flat=True)
    )
    have_groups = set(
        TaskGroupObjectPermission.objects.filter(
            content_object_id=task.pk, permission_id=perm
        ).values_list("group_id", flat=True)
    )
    if have_users - users:
        TaskUserObjectPermission.objects.filter(
            content_object_id=task.pk, user_id__in=have_users - users
        ).delete()
    if have_groups - groups:
        TaskGroupObjectPermission.objects.filter(
            content_object_id=task.pk, group_id__in=have_groups - groups
        ).delete()
    if users - have_users:
        TaskUserObjectPermission.objects.bulk_create(
            TaskUserObjectPermission(content_object_id=task.pk, permission_id=perm, user_id=uid)
            for uid in users - have_users
        )
    if groups - have_groups:
        TaskGroupObjectPermission.objects.bulk_create(
            TaskGroupObjectPermission(content_object_id=task.pk, permission_id=perm, group_id=gid)
            for gid in groups - have_groups
        )


def task_opened(task) -> None:
    """``task`` now waits for a person of ``task.candidate_role`` (or ``task.assignee``)."""
    _sync(task)


def task_reassigned(task) -> None:
    """``task``'s role, assignee or claimant changed."""
    _sync(task)


def task_closed(task) -> None:
    """``task`` no longer waits for anyone."""
    if task.pk is None:
        return
    TaskUserObjectPermission.objects.filter(content_object_id=task.pk).delete()
    TaskGroupObjectPermission.objects.filter(content_object_id=task.pk).delete()
