"""Reads of the control room: the operations home's figures (``/admin/``), the incidents
(``/api/incidents/``), the task an operator repairs, and the search by business data. Nothing
here writes.

An incident is a ``process_failed`` event: a task failed for good (after its retries) or a
compensation failed. It is open until the next retry, skip, replay, completion or cancellation
of that task is recorded (``resolved_at``); a task failing again opens a new one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Count, Exists, OuterRef, QuerySet, Subquery
from django.utils import timezone

from processes import authority, health
from processes import spec as spec_module
from processes.authority import SEE
from processes.db.core import MAX_DB_INT
from processes.errors import NotFound
from processes.models import (
    ACTIVE_PROCESS_STATES,
    EventType,
    ProcessDefinition,
    ProcessEvent,
    ProcessInstance,
    ProcessState,
    TaskInstance,
    TaskState,
    TaskType,
    overdue_q,
)

# What ends an incident of a task: an operator's repair or the task getting done some other way.
RESOLVING = (
    EventType.TASK_RETRIED,
    EventType.TASK_SKIPPED,
    EventType.TASK_RESET,
    EventType.TASK_COMPLETED,
    EventType.TASK_CANCELLED,
    EventType.COMPENSATION_RETRIED,
    EventType.COMPENSATION_SKIPPED,
    EventType.COMPENSATION_COMPLETED,
)
OPEN, RESOLVED = "open", "resolved"
FAILED_STATES = (TaskState.FAILED, TaskState.COMPENSATION_FAILED)  # a task with an open incident


def incidents_for(
    user,
    *,
    state: str | None = OPEN,
    definition: str | None = None,
    older_than: dt.timedelta | None = None,
    younger_than: dt.timedelta | None = None,
    now=None,
) -> QuerySet:
    """Incidents of the definitions ``user`` sees, oldest first, each with ``resolved_at``
    (None: open). ``state``: ``open``, ``resolved`` or None (both); ``older_than``/
    ``younger_than``: by the time since the incident opened."""
    now = now or timezone.now()
    resolved_at = (
        ProcessEvent.objects.filter(
            task_id=OuterRef("task_id"), seq__gt=OuterRef("seq"), type__in=RESOLVING
        )
        .order_by("seq")
        .values("created_at")[:1]
    )
    qs = (
        ProcessEvent.objects.filter(type=EventType.PROCESS_FAILED)
        .annotate(resolved_at=Subquery(resolved_at))
        .select_related("process", "task")
        .order_by("created_at", "id")
    )
    keys = authority.granted_keys(user, SEE)
    if keys is not None:
        qs = qs.filter(process__definition_key__in=keys)
    if definition:
        qs = qs.filter(process__definition_key=definition)
    if older_than is not None:
        qs = qs.filter(created_at__lte=now - older_than)
    if younger_than is not None:
        qs = qs.filter(created_at__gte=now - younger_than)
    if state == OPEN:  # (the failed tasks lead: few, on the task_state_name index)
        qs = qs.filter(task__state__in=FAILED_STATES, resolved_at__isnull=True)
    elif state == RESOLVED:
        qs = qs.filter(resolved_at__isnull=False)
    return qs


def task_for_operator(user, task_id) -> TaskInstance:
    """A task of a definition ``user`` sees (``view_process`` or more), with its process; 404
    (``NotFound``) otherwise, the same as an unknown id. Whether they may repair it is the
    engine's check (``operate_process``)."""
    try:
        task_id = int(task_id)
    except (TypeError, ValueError):
        raise NotFound(f"task {task_id} not found") from None
    task = None
    if 0 < task_id <= MAX_DB_INT and user and user.is_authenticated and user.is_active:
        task = TaskInstance.objects.select_related("process").filter(pk=task_id).first()
    if task is None or not authority.has_definition_perm(user, SEE, task.process.definition_key):
        raise NotFound(f"task {task_id} not found")
    return task


def search_filter(qs: QuerySet, q: str, *, prefix: str = "") -> QuerySet:
    """``qs`` narrowed to the cases whose business key or searchable variables (the
    definition's ``search`` list) contain ``q``, whatever its case. ``prefix``: the path to the
    process from the rows of ``qs`` (``"process__"`` for tasks). On PostgreSQL a trigram index
    serves it (``process_search_trgm``)."""
    term = spec_module.search_term(q)
    if not term:
        return qs
    return qs.filter(**{f"{prefix}search_text__contains": term})


# --- the operations home --------------------------------------------------------------------------

HOME_INCIDENTS = 10  # the oldest open incidents listed on the home (the count says how many)


@dataclass
class DefinitionFigures:
    key: str
    name: str
    running: int = 0
    failed: int = 0  # cases with an open incident
    waiting: int = 0  # active cases with an open human task: waiting for people


@dataclass
class Home:
    """What ``/admin/`` shows first; each figure is one query on an index (bench/admin.py)."""

    definitions: list[DefinitionFigures] = field(default_factory=list)
    incidents: list[TaskInstance] = field(default_factory=list)  # oldest first, with .process
    incident_count: int = 0
    overdue_tasks: int = 0
    deadlines_passed: int = 0  # active cases whose process deadline passed
    health_reasons: list[str] = field(default_factory=list)
    now: dt.datetime | None = None


def _granted(qs: QuerySet, keys, lookup: str = "definition_key") -> QuerySet:
    return qs if keys is None else qs.filter(**{f"{lookup}__in": keys})


def home(user, *, now=None) -> Home:
    """The operations home for ``user``: the cases of the definitions they see by state, the
    oldest open incidents, overdue human tasks, passed process deadlines, and the installation's
    health (the ``/healthz`` reasons)."""
    now = now or timezone.now()
    keys = authority.granted_keys(user, SEE)
    figures: dict[str, DefinitionFigures] = {}
    names = _granted(ProcessDefinition.objects.all(), keys, "key").values_list("key", "name", "id")
    ids = {}
    for key, name, pk in names.order_by("key", "version"):  # the newest version's name wins
        figures[key] = DefinitionFigures(key=key, name=name)
        ids[pk] = key
    # (process_active and task_open_human_process: index-only scans, merged in id order)
    active = ProcessInstance.objects.filter(state__in=ACTIVE_PROCESS_STATES)
    if keys is not None:
        active = active.filter(definition_id__in=list(ids))
    by_state = active.values_list("definition_id", "state").annotate(n=Count("*")).order_by()
    for definition_id, state, n in by_state:
        row = figures.get(ids.get(definition_id))
        if row is not None:
            if state == ProcessState.FAILED:
                row.failed += n
            else:
                row.running += n
    open_human = TaskInstance.objects.filter(
        process_id=OuterRef("pk"), type=TaskType.HUMAN, state=TaskState.SCHEDULED
    )
    waiting = active.filter(Exists(open_human)).values_list("definition_id")
    for definition_id, n in waiting.annotate(n=Count("*")).order_by():
        row = figures.get(ids.get(definition_id))
        if row is not None:
            row.waiting += n
    failed = _granted(
        TaskInstance.objects.filter(state__in=FAILED_STATES), keys, "process__definition_key"
    )
    overdue = _granted(TaskInstance.objects.filter(overdue_q(now)), keys, "process__definition_key")
    late = _granted(
        ProcessEvent.objects.filter(
            type=EventType.PROCESS_DEADLINE_PASSED, process__state__in=ACTIVE_PROCESS_STATES
        ),
        keys,
        "process__definition_key",
    )
    reasons, _ = health.check(now)
    return Home(
        definitions=list(figures.values()),
        incidents=list(
            failed.select_related("process").order_by("finished_at", "id")[:HOME_INCIDENTS]
        ),
        incident_count=failed.count(),
        overdue_tasks=overdue.count(),
        deadlines_passed=late.values("process_id").distinct().count(),
        health_reasons=reasons,
        now=now,
    )
