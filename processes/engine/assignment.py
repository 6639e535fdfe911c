"""Who a human task goes to when it is scheduled, and who took part in it."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.utils import timezone

from processes import authority
from processes import spec as spec_module
from processes.models import Absence, TaskInstance


def resolve_assignee(run, task: TaskInstance, task_spec: spec_module.TaskSpec):
    """The spec's assignee of ``task`` (read from ``run``'s variables), unless separation of
    duties bars them (then the role decides).

    Returns (user or None, what barred the named person or None).
    """
    if not task_spec.assignee:
        return None, None
    username = spec_module.lookup(run.process.variables, task_spec.assignee)
    if not isinstance(username, str) or not username:
        return None, None
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        return None, None
    refusal = authority.separation_refusal(
        user, task, process=run.process, spec=run.spec, tasks=run.tasks
    )
    if refusal:
        return None, {"user": username, "rule": refusal}
    return user, None


def assign(run, task: TaskInstance, task_spec: spec_module.TaskSpec, now):
    """Give human ``task`` (being scheduled) to its spec's assignee, or to their substitute
    while they are away. Returns (what barred the assignee, what the hand-over records)."""
    task.on_behalf_of = None
    task.assignee, barred = resolve_assignee(run, task, task_spec)
    covered = cover(run, task, timezone.localdate(now))
    if task.assignee is not None:
        add_participant(task, task.assignee.pk)
    return barred, covered


def add_participant(task: TaskInstance, user_id: int) -> None:
    """Record that ``user_id`` took part in ``task`` (assigned, claimed, delegated, decided)."""
    if user_id not in (task.participants or []):
        task.participants = [*(task.participants or []), user_id]


def _absence_of(user_id, day) -> Absence | None:
    return (
        Absence.objects.on(day)
        .filter(user_id=user_id)
        .select_related("user", "substitute")
        .order_by("-ends_on")
        .first()
    )


def cover(run, task: TaskInstance, day) -> dict | None:
    """Hand ``task`` (open, just given to its assignee) over if its assignee is away on
    ``day``; returns what the ``task_substituted`` event records, or None."""
    if task.assignee_id is None:
        return None
    absence = _absence_of(task.assignee_id, day)
    return None if absence is None else hand_over(run, task, absence, day)


def hand_over(run, task: TaskInstance, absence: Absence, day) -> dict:
    """Give ``task`` to the substitute of ``absence`` (or its role); what the event records."""
    absent, substitute = absence.user, absence.substitute
    refusal = (
        authority.handover_refusal(
            substitute, task, process=run.process, spec=run.spec, tasks=run.tasks, day=day
        )
        if substitute is not None
        else "no substitute named"
    )
    add_participant(task, absent.pk)
    task.claimed_by = None
    if not refusal:
        task.assignee, task.on_behalf_of = substitute, absent
        add_participant(task, substitute.pk)
    elif task.candidate_role:
        task.assignee, task.on_behalf_of = None, absent
    else:  # no role to fall back on: it waits for them
        task.assignee, task.on_behalf_of = absent, None
    run.touch(task)
    return {
        "absent": absent.get_username(),
        "until": absence.ends_on.isoformat(),
        "to": substitute.get_username() if not refusal else None,
        "role": task.candidate_role if refusal else "",
        "refused": refusal if substitute is not None else "",
    }
