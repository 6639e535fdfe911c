"""Reads of the control room: incidents (the admin home, ``/api/incidents/``), the task an
operator repairs, and the search by business data. Nothing here writes.

An incident is a ``process_failed`` event: a task failed for good (after its retries) or a
compensation failed. It is open until the next retry, skip, replay, completion or cancellation
of that task is recorded (``resolved_at``); a task failing again opens a new one.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from processes import authority
from processes import spec as spec_module
from processes.authority import SEE
from processes.db.core import MAX_DB_INT
from processes.errors import NotFound
from processes.models import EventType, ProcessEvent, TaskInstance

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
    if state == OPEN:
        qs = qs.filter(resolved_at__isnull=True)
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
