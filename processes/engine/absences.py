"""Absences: record them, and hand an absent person's tasks to their substitute.

While someone is away, a task that would be theirs goes to their substitute, or back to the
task's role when there is none or the substitute may not take it (``authority.handover_refusal``:
the role, their own absence, separation of duties). New tasks are covered when they are
scheduled (``assignment.cover``, called by ``_run._schedule``); the open tasks they hold when the absence
begins are handed over once, by the timer sweep (``absences_apply``) or at once by
``absence_record`` when it has begun already. Each hand-over is one ``task_substituted`` event
that says why. When the absence ends, handed-over tasks stay where they went.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.utils import timezone

from processes import authority, events
from processes import spec as spec_module
from processes.engine._run import _lock_for_task
from processes.engine.assignment import hand_over
from processes.errors import InvalidInput, NotFound
from processes.events import SYSTEM, Actor
from processes.models import Absence, TaskInstance, TaskState, TaskType

logger = logging.getLogger(__name__)

MAX_DAYS = 366
NOTE_MAX = 200


def _day(value, name: str, errors: dict) -> dt.date | None:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip()[:10]) if value not in (None, "") else None
    except ValueError:
        pass
    errors[name] = ["must be a date YYYY-MM-DD"]
    return None


def absence_record(*, actor: Actor, starts_on, ends_on, substitute=None, note: str = "") -> Absence:
    """Record that ``actor``'s person is away from ``starts_on`` to ``ends_on`` (both days
    included), covered by ``substitute`` (a user, or None: their tasks go to the role).

    Bad input raises ``InvalidInput`` naming the field. An absence that has begun hands over
    the open tasks they hold at once.
    """
    user = actor.user
    if user is None:
        raise InvalidInput("only a person can be absent")
    errors: dict[str, list[str]] = {}
    starts = _day(starts_on, "starts_on", errors)
    ends = _day(ends_on, "ends_on", errors)
    today = timezone.localdate()
    if starts is None and "starts_on" not in errors:
        errors["starts_on"] = ["required"]
    if ends is None and "ends_on" not in errors:
        errors["ends_on"] = ["required"]
    if starts and ends:
        if ends < starts:
            errors["ends_on"] = ["must be on or after the first day"]
        elif ends < today:
            errors["ends_on"] = ["is in the past: record absences to come or under way"]
        elif (ends - starts).days >= MAX_DAYS:
            errors["ends_on"] = [f"an absence lasts at most {MAX_DAYS} days"]
    if substitute is not None:
        if substitute.pk == user.pk:
            errors["substitute"] = ["choose someone else: you are the one away"]
        elif not substitute.is_active:
            errors["substitute"] = ["unknown or inactive user"]
    note = (note or "").strip()
    if len(note) > NOTE_MAX:
        errors["note"] = [f"at most {NOTE_MAX} characters"]
    elif note and (problem := spec_module.text_problem(note)):
        errors["note"] = [problem]
    if not errors:
        overlap = (
            Absence.objects.filter(user=user, starts_on__lte=ends, ends_on__gte=starts)
            .order_by("starts_on")
            .first()
        )
        if overlap is not None:
            errors["starts_on"] = [
                f"overlaps your absence from {overlap.starts_on} to {overlap.ends_on}"
            ]
    if errors:
        raise InvalidInput("the absence is not valid", fields=errors)
    absence = Absence.objects.create(
        user=user, starts_on=starts, ends_on=ends, substitute=substitute, note=note
    )
    if starts <= today:
        _apply(absence, actor=actor, today=today)
    return absence


def absence_end(*, actor: Actor, absence_id) -> Absence:
    """End ``actor``'s own absence: today becomes its last day (one to come is removed).
    Tasks already handed over stay with whoever took them."""
    user = actor.user
    absence = Absence.objects.filter(pk=absence_id, user_id=getattr(user, "pk", None)).first()
    if absence is None:
        raise NotFound(f"absence {absence_id} not found")
    today = timezone.localdate()
    if absence.starts_on > today:
        absence.delete()
    elif absence.ends_on >= today:
        absence.ends_on = today
        absence.save(update_fields=["ends_on"])
    return absence


def _held_by(user_id, task: TaskInstance) -> bool:
    return task.claimed_by_id == user_id or (
        task.claimed_by_id is None and task.assignee_id == user_id
    )


@transaction.atomic
def _hand_over_open(task_id, absence: Absence, *, actor: Actor, day) -> bool:
    run, task = _lock_for_task(task_id)
    run.actor = actor
    if task.state != TaskState.SCHEDULED or not _held_by(absence.user_id, task):
        return False  # decided or passed on meanwhile
    handed = hand_over(run, task, absence, day)
    events.task_substituted(log=run.log, actor=actor, task=task, **handed)
    run.save()
    return True


def _apply(absence: Absence, *, actor: Actor, today) -> int:
    """Hand over the open tasks ``absence``'s person holds (each in its own transaction, its
    process locked); then mark the absence applied."""
    ids = list(
        TaskInstance.objects.filter(type=TaskType.HUMAN, state=TaskState.SCHEDULED)
        .filter(authority.held_by_q(absence.user))
        .order_by("id")
        .values_list("id", flat=True)
    )
    moved = 0
    for task_id in ids:
        try:
            moved += _hand_over_open(task_id, absence, actor=actor, day=today)
        except NotFound:
            continue  # archived meanwhile
    Absence.objects.filter(pk=absence.pk).update(applied_at=timezone.now())
    return moved


def absences_apply(*, today=None, limit: int = 100) -> int:
    """The sweep's part: hand over the open tasks of every absence that has begun and was not
    applied yet (absences over before anyone looked are only marked); how many tasks moved."""
    today = today or timezone.localdate()
    due = (
        Absence.objects.filter(applied_at__isnull=True, starts_on__lte=today)
        .select_related("user", "substitute")
        .order_by("starts_on", "id")[:limit]
    )
    moved = 0
    for absence in due:
        if absence.ends_on < today:
            Absence.objects.filter(pk=absence.pk).update(applied_at=timezone.now())
            continue
        moved += _apply(absence, actor=SYSTEM, today=today)
    return moved
