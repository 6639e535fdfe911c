"""Read queries used by the API (and open to the admin and the inbox).

Who sees what:

- staff and superusers see and operate every definition;
- anyone else only the definitions they were granted, per definition key, with django-guardian
  object permissions on a ``ProcessDefinition`` row (any version of the key counts, so a grant
  survives a new version): ``start_process``, ``view_process``, ``operate_process``. Model-level
  (global) permissions are deliberately *not* accepted (``accept_global_perms=False``): a grant
  is always for a definition, never "everything";
- human tasks: those the caller may act on (see ``human_tasks_for``).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone
from guardian.shortcuts import get_objects_for_user

from processes.errors import NotFound
from processes.models import (
    DefinitionStatus,
    ProcessDefinition,
    ProcessEvent,
    ProcessInstance,
    TaskInstance,
    TaskState,
    TaskType,
)

START = "processes.start_process"
VIEW = "processes.view_process"
OPERATE = "processes.operate_process"
SEE = (VIEW, OPERATE)  # operating a definition's processes implies seeing them

MAX_DB_INT = 2**63 - 1


def sees_everything(user) -> bool:
    return bool(user and user.is_authenticated and (user.is_superuser or user.is_staff))


def granted_keys(user, perms: tuple[str, ...] | str) -> QuerySet | None:
    """Definition keys on which ``user`` holds any of ``perms``; None means every key."""
    if sees_everything(user):
        return None
    if not user or not user.is_authenticated:
        return ProcessDefinition.objects.none().values("key")
    perms = [perms] if isinstance(perms, str) else list(perms)
    return get_objects_for_user(
        user,
        perms,
        klass=ProcessDefinition,
        any_perm=True,
        accept_global_perms=False,
        with_superuser=True,
    ).values("key")


# One statement over guardian's generic permission tables for the hot single-key check (every
# detail read and every write asks it): guardian's get_objects_for_user costs ~3 ms of query
# building per call. Same rule as ``granted_keys``: user or group grants, no global perms.
_HAS_PERM_SQL = """
SELECT 1 FROM processes_processdefinition d
WHERE d.key = %s AND CAST(d.id AS VARCHAR(255)) IN (
    SELECT uop.object_pk FROM guardian_userobjectpermission uop
    JOIN auth_permission p ON p.id = uop.permission_id
    JOIN django_content_type ct ON ct.id = p.content_type_id
    WHERE uop.user_id = %s AND uop.content_type_id = ct.id
      AND ct.app_label = 'processes' AND ct.model = 'processdefinition' AND p.codename IN ({codes})
    UNION ALL
    SELECT gop.object_pk FROM guardian_groupobjectpermission gop
    JOIN auth_user_groups ug ON ug.group_id = gop.group_id
    JOIN auth_permission p ON p.id = gop.permission_id
    JOIN django_content_type ct ON ct.id = p.content_type_id
    WHERE ug.user_id = %s AND gop.content_type_id = ct.id
      AND ct.app_label = 'processes' AND ct.model = 'processdefinition' AND p.codename IN ({codes})
)
LIMIT 1
"""


def has_definition_perm(user, perms: tuple[str, ...] | str, definition_key: str) -> bool:
    """Whether ``user`` holds any of ``perms`` on some version of ``definition_key``."""
    if sees_everything(user):
        return True
    if not user or not user.is_authenticated:
        return False
    perms = [perms] if isinstance(perms, str) else list(perms)
    codenames = [p.split(".", 1)[1] for p in perms]
    codes = ", ".join(["%s"] * len(codenames))
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            _HAS_PERM_SQL.format(codes=codes),
            [definition_key, user.pk, *codenames, user.pk, *codenames],
        )
        return cursor.fetchone() is not None


def can_import_definitions(user) -> bool:
    return sees_everything(user) or user.has_perm("processes.add_processdefinition")


# --- definitions ----------------------------------------------------------------------------------


def definitions_for(user) -> QuerySet:
    """The newest published version of every definition key the caller may use, by key."""
    newest = (
        ProcessDefinition.objects.published()
        .filter(key=OuterRef("key"))
        .order_by("-version")
        .values("pk")[:1]
    )
    qs = ProcessDefinition.objects.published().filter(pk=Subquery(newest))
    keys = granted_keys(user, (START, VIEW, OPERATE))
    if keys is not None:
        qs = qs.filter(key__in=keys)
    return qs.order_by("key", "-version")


def definition_detail(user, key: str) -> tuple[ProcessDefinition, list[ProcessDefinition]]:
    """The newest published version of ``key`` and all its versions (newest first)."""
    if not has_definition_perm(user, (START, VIEW, OPERATE), key):
        raise NotFound(f"no definition {key!r}")
    versions = list(ProcessDefinition.objects.filter(key=key).order_by("-version"))
    published = [d for d in versions if d.status == DefinitionStatus.PUBLISHED]
    if not published:
        raise NotFound(f"no published definition {key!r}")
    return published[0], versions


# --- processes ------------------------------------------------------------------------------------


def processes_for(user) -> QuerySet:
    """Instances the caller may see, newest first (ties broken by id, so pages are stable)."""
    qs = ProcessInstance.objects.select_related("definition").order_by("-created_at", "id")
    keys = granted_keys(user, SEE)
    if keys is not None:
        qs = qs.filter(definition_key__in=keys)
    return qs


DEFINITION_BULK = ("definition__spec", "definition__description")


def process_for(user, process_id, *, perms=SEE, with_tasks: bool = False) -> ProcessInstance:
    """One instance the caller may see (404 otherwise, the same as an unknown id)."""
    # the definition's spec and description aren't shown here: don't fetch and decode them
    qs = ProcessInstance.objects.select_related("definition").defer(*DEFINITION_BULK)
    if with_tasks:
        qs = qs.prefetch_related(
            _tasks_prefetch(),
        )
    try:
        process = qs.get(pk=process_id)
    except (ProcessInstance.DoesNotExist, ValidationError, ValueError):
        process = None
    if process is None or not has_definition_perm(user, perms, process.definition_key):
        raise NotFound(f"process {process_id} not found")
    return process


def with_tasks(process: ProcessInstance) -> ProcessInstance:
    """``process`` with its tasks loaded for serialising (one query)."""
    from django.db.models import prefetch_related_objects

    prefetch_related_objects([process], _tasks_prefetch())
    return process


def _tasks_prefetch():
    from django.db.models import Prefetch

    return Prefetch(
        "tasks",
        queryset=TaskInstance.objects.select_related("assignee", "claimed_by").order_by(
            "stage_index", "id"
        ),
    )


def process_events(process: ProcessInstance, *, after: int | None = None) -> QuerySet:
    qs = ProcessEvent.objects.filter(process=process)
    if after is not None:
        qs = qs.filter(seq__gt=after)
    return qs.order_by("seq")


def scheduled_task_names(process: ProcessInstance) -> list[str]:
    return list(
        TaskInstance.objects.filter(process=process, state=TaskState.SCHEDULED)
        .order_by("stage_index", "id")
        .values_list("name", flat=True)
    )


def seed_event_task(*, definition_key: str, business_ref_no: str, task_name: str):
    """The task a seed event names (the newest instance of the business key), or None."""
    return (
        TaskInstance.objects.filter(
            process__definition_key=definition_key,
            process__business_key=business_ref_no,
            name=task_name,
        )
        .order_by("-process__created_at")
        .first()
    )


# --- external workers -----------------------------------------------------------------------------


def queue_tasks_for(user, task_queue: str) -> QuerySet:
    """Scheduled external tasks of ``task_queue`` (oldest first) on definitions the caller operates."""
    qs = (
        TaskInstance.objects.filter(
            task_queue=task_queue, state=TaskState.SCHEDULED, type=TaskType.SERVICE, handler=""
        )
        .select_related("process", "process__definition")
        .order_by("scheduled_at", "id")
    )
    keys = granted_keys(user, OPERATE)
    if keys is not None:
        qs = qs.filter(process__definition_key__in=keys)
    return qs


def start_task_payloads(tasks) -> list[dict]:
    """The seed's StartTask payload of each task, plus its id, process id and scheduled time."""
    from processes import engine

    specs: dict[int, object] = {}
    out = []
    for task in tasks:
        definition = task.process.definition
        if definition.pk not in specs:
            specs[definition.pk] = definition.parsed()
        try:
            task_spec = specs[definition.pk].task(task.name)
        except (KeyError, ValueError):
            task_spec = None
        payload = engine.start_task_payload(task.process, task, task_spec)
        payload.update(
            {
                "task_id": task.pk,
                "process_id": str(task.process_id),
                "scheduled_at": task.scheduled_at,
            }
        )
        out.append(payload)
    return out


# --- human tasks ----------------------------------------------------------------------------------
#
# Who may act on a human task is the inbox's rule (issue 3): the guardian object permission
# ``processes.act_on_task`` kept by ``tasks_inbox.permissions``; ``tasks_inbox.selectors`` reads it.
# The API uses those selectors so the web inbox and the API never disagree.


def human_tasks_for(user) -> QuerySet:
    """Open human tasks the caller may act on (their roles, assigned to or claimed by them)."""
    from tasks_inbox import selectors as inbox

    if not user or not user.is_authenticated:
        return TaskInstance.objects.none()
    roles = inbox.role_names(user)
    return inbox.inbox_tasks(user=user, tab="roles", roles=roles) | inbox.inbox_tasks(
        user=user, tab="assigned", roles=roles
    )


def human_task_for(user, task_id) -> TaskInstance:
    """A human task the caller may see (open: may act on; closed: had it); 404 otherwise.

    A closed one is returned so the engine can answer 409 (deciding a closed task).
    """
    from processes.errors import Forbidden
    from tasks_inbox import selectors as inbox

    try:
        task_id = int(task_id)
    except (TypeError, ValueError):
        raise NotFound(f"task {task_id} not found") from None
    if not 0 < task_id <= MAX_DB_INT or not user or not user.is_authenticated:
        raise NotFound(f"task {task_id} not found")
    found = inbox.task_for_user(user=user, task_id=task_id)
    if found is None:
        raise NotFound(f"task {task_id} not found")
    task, access = found
    if task.state == TaskState.SCHEDULED and not access.can_act:
        raise Forbidden(f"you may not act on task {task_id}")
    return task


def is_overdue(task: TaskInstance) -> bool:
    return bool(task.due_at and task.state == TaskState.SCHEDULED and task.due_at < timezone.now())
