"""Who a human task goes to when it is scheduled, and who took part in it."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from processes import authority
from processes import spec as spec_module
from processes.models import TaskInstance


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


def add_participant(task: TaskInstance, user_id: int) -> None:
    """Record that ``user_id`` took part in ``task`` (assigned, claimed, delegated, decided)."""
    if user_id not in (task.participants or []):
        task.participants = [*(task.participants or []), user_id]
