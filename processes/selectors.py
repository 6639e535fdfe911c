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

import uuid

from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone
from guardian.shortcuts import get_objects_for_user

from processes import raw
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
from processes.raw import MAX_DB_INT

START = "processes.start_process"
VIEW = "processes.view_process"
OPERATE = "processes.operate_process"
SEE = (VIEW, OPERATE)  # operating a definition's processes implies seeing them


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


# One SQL condition over guardian's generic permission tables for the hot single-key check (every
# detail read and every write asks it): guardian's get_objects_for_user costs ~3 ms of query
# building per call. Same rule as ``granted_keys``: user or group grants, no global perms, any
# version of the key counts. ``{key}`` is the SQL naming the key (a parameter or a column).
_GRANT_SQL = """EXISTS (
    SELECT 1 FROM processes_processdefinition g_d
    WHERE g_d.key = {key} AND CAST(g_d.id AS VARCHAR(255)) IN (
        SELECT uop.object_pk FROM guardian_userobjectpermission uop
        JOIN auth_permission p ON p.id = uop.permission_id
        JOIN django_content_type ct ON ct.id = p.content_type_id
        WHERE uop.user_id = %s AND uop.content_type_id = ct.id AND ct.app_label = 'processes'
          AND ct.model = 'processdefinition' AND p.codename IN ({codes})
        UNION ALL
        SELECT gop.object_pk FROM guardian_groupobjectpermission gop
        JOIN auth_user_groups ug ON ug.group_id = gop.group_id
        JOIN auth_permission p ON p.id = gop.permission_id
        JOIN django_content_type ct ON ct.id = p.content_type_id
        WHERE ug.user_id = %s AND gop.content_type_id = ct.id AND ct.app_label = 'processes'
          AND ct.model = 'processdefinition' AND p.codename IN ({codes})
    )
)"""


def _grant_sql(user, perms: tuple[str, ...] | str, key_sql: str) -> tuple[str, list]:
    """SQL true when ``user`` holds any of ``perms`` on the key ``key_sql`` names, and its params
    (after any of ``key_sql``'s own)."""
    if sees_everything(user):
        return "1 = 1", []
    if not user or not user.is_authenticated:
        return "1 = 0", []
    perms = [perms] if isinstance(perms, str) else list(perms)
    codenames = [p.split(".", 1)[1] for p in perms]
    codes = ", ".join(["%s"] * len(codenames))
    return _GRANT_SQL.format(key=key_sql, codes=codes), [user.pk, *codenames, user.pk, *codenames]


def has_definition_perm(user, perms: tuple[str, ...] | str, definition_key: str) -> bool:
    """Whether ``user`` holds any of ``perms`` on some version of ``definition_key``."""
    if sees_everything(user):
        return True
    if not user or not user.is_authenticated:
        return False
    grant, params = _grant_sql(user, perms, "%s")
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 WHERE {grant}", [definition_key, *params])
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


def startable_definition(user, key: str) -> ProcessDefinition | None:
    """The newest published version of ``key`` if ``user`` may start it, else None.

    One fixed statement (``processes/raw.py``) for what every start asks; the spec and the
    description stay unread until the engine needs them (it caches parsed specs).
    """
    grant, params = _grant_sql(user, START, "d.key")
    columns = raw.columns(ProcessDefinition, "d", exclude=("spec", "description"))
    sql = (
        f"SELECT {columns} FROM {raw.table(ProcessDefinition)} d "
        f"WHERE d.key = %s AND d.status = %s AND {grant} ORDER BY d.version DESC LIMIT 1"
    )
    found = list(ProcessDefinition.objects.raw(sql, [key, DefinitionStatus.PUBLISHED, *params]))
    return found[0] if found else None


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


def process_for(user, process_id, *, perms=SEE) -> ProcessInstance:
    """One instance the caller may see (404 otherwise, the same as an unknown id).

    One fixed statement (``processes/raw.py``) reads the instance, its definition's version and
    whether the caller may see it: this is the API's most frequent read, and building its ORM
    queries was half of its CPU.
    """
    try:
        pk = uuid.UUID(str(process_id))
    except ValueError:
        raise NotFound(f"process {process_id} not found") from None
    grant, params = _grant_sql(user, perms, "p.definition_key")
    process = ProcessInstance.objects.one_with_definition(
        "p.id = %s",
        [*params, raw.prep(ProcessInstance, "id", pk)],
        columns=f", CASE WHEN {grant} THEN 1 ELSE 0 END AS allowed",
    )
    if process is None or not process.allowed:
        raise NotFound(f"process {process_id} not found")
    return process


def with_tasks(process: ProcessInstance, tasks: list[TaskInstance] | None = None):
    """``process`` with its tasks (and their people) ready for serialising: ``tasks`` when the
    caller already holds them all, else one query."""
    if tasks is None:
        tasks = TaskInstance.objects.of_process(process.pk, people=True)
    # what prefetch_related stores: process.tasks.all() answers from it without a query
    cached = TaskInstance.objects.all()
    cached._result_cache = tasks
    cached._prefetch_done = True
    process._prefetched_objects_cache = {"tasks": cached}
    return process


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
