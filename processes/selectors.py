"""Read queries used by the API, the admin and the inbox. Nothing here writes.

Who sees what is ``processes.authority``'s rule, read here: definition grants per key
(``view_process``, ``start_process``, ``operate_process``, ``publish_definition``,
``correct_variables``; superusers hold them all, ``is_staff`` none), and for human tasks
``authority.task_rights`` and its SQL twins.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from dataclasses import dataclass

from croniter import croniter
from django.conf import settings
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from processes import authority
from processes.authority import ANY, OPERATE, SEE, START
from processes.db import api as db_api
from processes.db import engine as db_engine
from processes.db.core import MAX_DB_INT
from processes.errors import NotFound
from processes.models import (
    ACTIVE_PROCESS_STATES,
    ActorType,
    DefinitionComponent,
    DefinitionStatus,
    EventType,
    ProcessDefinition,
    ProcessEvent,
    ProcessInstance,
    ProcessState,
    ScheduledStart,
    TaskInstance,
    TaskRound,
    TaskState,
    TaskType,
)

# --- definitions ----------------------------------------------------------------------------------


def component_owner(component_name: str) -> str | None:
    """The definition key that owns a seed ``component_name`` (one key per name)."""
    return (
        DefinitionComponent.objects.filter(component_name=component_name)
        .values_list("key", flat=True)
        .first()
    )


def find_definition(*, key: str | None = None, component_name: str | None = None):
    """The newest published version of ``key``, or of the key owning ``component_name``."""
    if not key and component_name:
        key = component_owner(component_name)
    definition = None
    if key:
        definition = db_engine.newest_published(key)
    if definition is None:
        raise NotFound(f"no published definition {key or component_name!r}")
    return definition


def definitions_for(user) -> QuerySet:
    """The newest published version of every definition key the caller may use, by key."""
    newest = (
        ProcessDefinition.objects.published()
        .filter(key=OuterRef("key"))
        .order_by("-version")
        .values("pk")[:1]
    )
    qs = ProcessDefinition.objects.published().filter(pk=Subquery(newest))
    keys = authority.granted_keys(user, ANY)
    if keys is not None:
        qs = qs.filter(key__in=keys)
    return qs.order_by("key", "-version")


def startable_definition(user, key: str) -> ProcessDefinition | None:
    """The newest published version of ``key`` if ``user`` may start it, else None (one fixed
    statement: every start asks it)."""
    if not user or not user.is_authenticated or not user.is_active:
        return None
    if authority.is_superuser(user):
        return db_api.startable_definition(key)
    return db_api.startable_definition(key, user=user, codenames=authority.codenames(START))


def definition_detail(user, key: str) -> tuple[ProcessDefinition, list[ProcessDefinition]]:
    """The newest published version of ``key`` and all its versions (newest first)."""
    if not authority.has_definition_perm(user, ANY, key):
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
    keys = authority.granted_keys(user, SEE)
    if keys is not None:
        qs = qs.filter(definition_key__in=keys)
    return qs


def process_for(user, process_id, *, perms=SEE) -> ProcessInstance:
    """One instance the caller may see (404 otherwise, the same as an unknown id).

    One fixed statement reads the instance, its definition's version and whether the caller may
    see it: this is the API's most frequent read.
    """
    try:
        pk = uuid.UUID(str(process_id))
    except ValueError:
        raise NotFound(f"process {process_id} not found") from None
    if not user or not user.is_authenticated or not user.is_active:
        raise NotFound(f"process {process_id} not found")
    if authority.is_superuser(user):
        process, allowed = db_api.process_with_grant(pk)
    else:
        codenames = authority.codenames(perms)
        process, allowed = db_api.process_with_grant(pk, user=user, codenames=codenames)
    if process is None or not allowed:
        raise NotFound(f"process {process_id} not found")
    return process


def process_tasks(process: ProcessInstance) -> list[TaskInstance]:
    """The tasks of ``process`` in spec order, each with its assignee's and claimer's username
    loaded (one query), for showing them."""
    return db_engine.tasks_of_process(process.pk, people=True)


def process_events(process: ProcessInstance, *, after: int | None = None) -> QuerySet:
    qs = ProcessEvent.objects.filter(process=process)
    if after is not None:
        qs = qs.filter(seq__gt=after)
    return qs.order_by("seq")


def corrections_before_decision(task: TaskInstance) -> list[ProcessEvent]:
    """The ``variables_changed`` events whoever decides ``task`` (a human task) should know of:
    those since the process's previous human decision, up to ``task``'s own decision (while it
    is open: up to now), oldest first."""
    events = ProcessEvent.objects.filter(process_id=task.process_id)
    decisions = events.filter(type=EventType.TASK_COMPLETED, task__type=TaskType.HUMAN)
    upper = None
    if task.state == TaskState.COMPLETED:
        upper = decisions.filter(task=task).order_by("-seq").values_list("seq", flat=True).first()
    if upper is not None:
        decisions = decisions.filter(seq__lt=upper)
    lower = decisions.order_by("-seq").values_list("seq", flat=True).first() or 0
    found = events.filter(type=EventType.VARIABLES_CHANGED, seq__gt=lower)
    if upper is not None:
        found = found.filter(seq__lt=upper)
    return list(found.order_by("seq"))


def task_rounds(process: ProcessInstance) -> QuerySet:
    """The executions rework loops ran again, oldest round first."""
    return (
        TaskRound.objects.filter(process=process)
        .select_related("decided_by")
        .order_by("round", "task__stage_index", "task_id", "id")
    )


def task_names(process: ProcessInstance) -> list[str]:
    """Every task of ``process`` in stage order."""
    return list(
        TaskInstance.objects.filter(process=process)
        .order_by("stage_index", "id")
        .values_list("name", flat=True)
    )


def scheduled_task_names(process: ProcessInstance) -> list[str]:
    return list(
        TaskInstance.objects.filter(process=process, state=TaskState.SCHEDULED)
        .order_by("stage_index", "id")
        .values_list("name", flat=True)
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
    keys = authority.granted_keys(user, OPERATE)
    if keys is not None:
        qs = qs.filter(process__definition_key__in=keys)
    return qs


def start_task_payload(process, task, task_spec=None) -> dict:
    """The seed's StartTask message, with the task's extra template fields packed in."""
    payload = {
        "business_ref_no": process.business_key,
        "component_name": process.definition.component_name or process.definition_key,
        "event_name": "StartTask",
        "stage_name": task.stage,
        "task_name": task.name,
        "task_type": task.type,
    }
    if task.task_queue:
        payload["task_queue"] = task.task_queue
    if task_spec is not None:
        for key, value in task_spec.extra.items():
            payload.setdefault(key, value)
    return payload


def start_task_payloads(tasks) -> list[dict]:
    """The seed's StartTask payload of each task, plus its id, process id and scheduled time."""
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
        payload = start_task_payload(task.process, task, task_spec)
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


def human_tasks_for(user) -> QuerySet:
    """Open human tasks in the caller's inbox (``authority.listed_q``), earliest due first."""
    if not user or not user.is_authenticated or not user.is_active:
        return TaskInstance.objects.none()
    roles = authority.roles_of(user)
    return (
        TaskInstance.objects.filter(type=TaskType.HUMAN, state=TaskState.SCHEDULED)
        .filter(authority.listed_q(user, roles))
        .select_related("process", "process__definition", "assignee", "claimed_by")
        .order_by("due_at", "id")
    )


def human_task_with_rights(user, task_id):
    """(task, rights) for the human task ``task_id`` if ``user`` may see it, else None.

    The task comes with its process and definition; ``rights`` is ``authority.task_rights``
    (an operator of the definition reads it, read-only).
    """
    if not user or not user.is_authenticated or not user.is_active:
        return None
    try:
        task_id = int(task_id)
    except (TypeError, ValueError):
        return None
    if not 0 < task_id <= MAX_DB_INT:
        return None
    task = (
        TaskInstance.objects.filter(pk=task_id, type=TaskType.HUMAN)
        .select_related("process", "process__definition", "assignee", "claimed_by", "decided_by")
        .first()
    )
    if task is None:
        return None
    process = task.process
    operator = authority.has_definition_perm(user, SEE, process.definition_key)
    rights = authority.task_rights(
        user, task, process=process, spec=process.definition.parsed(), operator=operator
    )
    return (task, rights) if rights.see else None


def human_task_for(user, task_id) -> tuple[TaskInstance, authority.TaskRights]:
    """(task, the caller's rights on it) for a human task the caller may see; NotFound (404)
    otherwise. A closed one is returned so the engine can answer 409 (deciding a closed task).
    """
    found = human_task_with_rights(user, task_id)
    if found is None:
        raise NotFound(f"task {task_id} not found")
    return found


# --- retention ------------------------------------------------------------------------------------

CLOSED_STATES = (ProcessState.COMPLETED, ProcessState.CANCELLED, ProcessState.COMPENSATED)


def due_for_archiving(*, now, definition_key: str | None = None) -> QuerySet:
    """Closed processes whose ``completed_at`` is older than their definition version's
    ``retention``, oldest first (one condition per definition version that has a retention)."""
    closed = ProcessInstance.objects.filter(state__in=CLOSED_STATES).values("definition_id")
    versions = ProcessDefinition.objects.filter(pk__in=closed)
    if definition_key:
        versions = versions.filter(key=definition_key)
    condition = Q(pk__in=[])
    for definition in versions:
        kept = definition.parsed().retention
        if kept is not None:
            condition |= Q(definition=definition, completed_at__lt=kept.cutoff(now))
    # A parent waits for its children to be archived first (their rows point to it).
    return (
        ProcessInstance.objects.filter(condition, state__in=CLOSED_STATES)
        .exclude(children__isnull=False)
        .order_by("completed_at", "id")
    )


# --- call activities ------------------------------------------------------------------------------


def ancestors(process: ProcessInstance, *, limit: int) -> list[ProcessInstance]:
    """The processes whose PROCESS tasks started ``process``, its parent first, at most
    ``limit`` of them (one query each: a chain is a few levels deep)."""
    chain: list[ProcessInstance] = []
    parent_id = process.parent_id
    while parent_id is not None and len(chain) < limit:
        parent = (
            ProcessInstance.objects.filter(pk=parent_id)
            .only("id", "parent_id", "definition_key", "business_key", "started_by")
            .first()
        )
        if parent is None:
            break
        chain.append(parent)
        parent_id = parent.parent_id
    return chain


@dataclass(frozen=True)
class Initiator:
    """Who started a process: the person (``user``; None when the system or a worker did, or
    the person's account is gone) as the history recorded it."""

    user: object
    label: str
    system: bool


def initiator(process: ProcessInstance) -> Initiator:
    """The person who started ``process`` (its ``started_by_user``), or whether the system did
    (its ``process_started`` event's actor)."""
    from django.contrib.auth import get_user_model

    if process.started_by_user_id is not None:
        user = get_user_model().objects.filter(pk=process.started_by_user_id).first()
        if user is not None:
            return Initiator(user=user, label=user.get_username(), system=False)
    actor_type = (
        ProcessEvent.objects.filter(process_id=process.pk, type=EventType.PROCESS_STARTED)
        .values_list("actor_type", flat=True)
        .first()
    )
    system = actor_type in (ActorType.SYSTEM, ActorType.WORKER)
    return Initiator(user=None, label=process.started_by, system=system)


# --- diagrams -------------------------------------------------------------------------------------


def cases_waiting_by_task(definition) -> dict[str, dict[str, int]]:
    """How many running cases of this version wait at each task: ``{task name: {"waiting": n,
    "failed": m}}`` (waiting: scheduled or running; failed: an incident to repair). Runs on
    the instances' (definition, state) index, then each one's tasks by (process, name)."""
    rows = (
        TaskInstance.objects.filter(
            process__definition=definition,
            process__state__in=ACTIVE_PROCESS_STATES,
            state__in=(TaskState.SCHEDULED, TaskState.RUNNING, TaskState.FAILED),
        )
        .values("name", "state")
        .annotate(n=Count("pk"))
        .order_by()
    )
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        kind = "failed" if row["state"] == TaskState.FAILED else "waiting"
        entry = counts.setdefault(row["name"], {"waiting": 0, "failed": 0})
        entry[kind] += row["n"]
    return counts


# --- attachments -----------------------------------------------------------------------------------


def attachments_of(process_id) -> list:
    """The files of one case, oldest first (who may read them: ``authority.attachment_rights``)."""
    from processes.models import Attachment

    return list(
        Attachment.objects.filter(process_id=process_id)
        .select_related("uploaded_by")
        .order_by("created_at", "pk")
    )


def attachment_blob(attachment):
    """The stored bytes of ``attachment``, opened for reading."""
    from django.core.files.storage import storages

    return storages["flowdesk_attachments"].open(attachment.blob, "rb")


# --- scheduled starts -----------------------------------------------------------------------------


def schedule_runs(definition: ProcessDefinition, count: int = 3, now=None) -> list[tuple]:
    """Each ``schedule`` entry of ``definition`` with its next ``count`` moments (local time)
    and its newest ``ScheduledStart`` (the last run's case), for the admin."""
    now = (now or timezone.now()).astimezone(zoneinfo.ZoneInfo(settings.TIME_ZONE))
    out = []
    for index, entry in enumerate(definition.parsed().schedule):
        it = croniter(entry.cron, now)
        moments = [it.get_next(dt.datetime) for _ in range(count)]
        last = (
            ScheduledStart.objects.filter(definition_key=definition.key, schedule_index=index)
            .select_related("process")
            .order_by("-due_at")
            .first()
        )
        out.append((entry, moments, last))
    return out
