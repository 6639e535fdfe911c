"""Human tasks: claim, release, delegate, decide. Who may is ``authority.task_rights``,
checked here inside the transaction that changes the task, so no adapter can go around it."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from processes import authority, events
from processes import spec as spec_module
from processes.engine import rework
from processes.engine._run import (
    HUMAN_TASK_REFUSAL,
    _advance,
    _complete,
    _lock_for_task,
    _Run,
)
from processes.engine.assignment import add_participant
from processes.errors import Conflict, Forbidden, InvalidInput, NotFound
from processes.events import Actor
from processes.models import (
    ACTIVE_PROCESS_STATES,
    TaskInstance,
    TaskState,
    TaskType,
)

logger = logging.getLogger(__name__)


def _open_human(run: _Run, task: TaskInstance) -> None:
    if task.type != TaskType.HUMAN:
        raise Conflict(f"task {task.name!r} is not a human task")
    if task.state != TaskState.SCHEDULED or run.process.state not in ACTIVE_PROCESS_STATES:
        decided = f" by {task.decided_by.get_username()}" if task.decided_by_id else ""
        raise Conflict(f"task {task.name!r} is already {task.state}{decided}")


def _rights(run: _Run, task: TaskInstance, actor: Actor) -> authority.TaskRights:
    if actor.user is None:
        return authority.NOTHING
    return authority.task_rights(
        actor.user, task, process=run.process, spec=run.spec, tasks=run.tasks
    )


def _refuse(rights: authority.TaskRights, task: TaskInstance, action: str):
    """The error telling a person why they may not ``action`` the task (404 if they can't see it)."""
    if not rights.see:
        return NotFound(f"task {task.pk} not found")
    if rights.refusal:
        return Forbidden(rights.refusal)
    if task.claimed_by_id:
        return Conflict(f"task is claimed by {task.claimed_by.get_username()}")
    if task.assignee_id:
        return Forbidden(
            f"task is assigned to {task.assignee.get_username()}: only they may {action} it"
        )
    return Forbidden(f"you may not {action} this task: it is for the role {task.candidate_role}")


@transaction.atomic
def task_claim(*, task_id, actor: Actor) -> TaskInstance:
    """Lock an unheld human task to the actor; claiming what one holds already changes nothing."""
    run, task = _lock_for_task(task_id)
    run.actor = actor
    _open_human(run, task)
    if actor.user is not None and authority.holder_id(task) == actor.user.pk:
        return task
    rights = _rights(run, task, actor)
    if not rights.claim:
        raise _refuse(rights, task, "claim")
    task.claimed_by = actor.user
    add_participant(task, actor.user.pk)
    run.touch(task)
    events.task_claimed(log=run.log, actor=actor, task=task)
    run.save()
    return task


@transaction.atomic
def task_release(*, task_id, actor: Actor) -> TaskInstance:
    """Return a claimed task to its role: its claimant, or an operator of the definition."""
    run, task = _lock_for_task(task_id)
    run.actor = actor
    _open_human(run, task)
    if not task.claimed_by_id:
        return task
    rights = _rights(run, task, actor)
    if not rights.release and not (
        actor.user is not None
        and authority.has_definition_perm(actor.user, authority.OPERATE, run.process.definition_key)
    ):
        raise _refuse(rights, task, "release")
    task.claimed_by = None
    run.touch(task)
    events.task_released(log=run.log, actor=actor, task=task)
    run.save()
    return task


@transaction.atomic
def task_delegate(*, task_id, actor: Actor, to_user, comment: str = "") -> TaskInstance:
    """Hand the task over to another person of its role: they hold it, the delegator no longer
    decides it."""
    run, task = _lock_for_task(task_id)
    run.actor = actor
    _open_human(run, task)
    rights = _rights(run, task, actor)
    if not rights.delegate:
        raise _refuse(rights, task, "delegate")
    if to_user is not None and to_user.pk == actor.user.pk:
        raise InvalidInput("choose someone else", fields={"to": ["you hold this task already"]})
    barred = authority.handover_refusal(
        to_user,
        task,
        process=run.process,
        spec=run.spec,
        tasks=run.tasks,
        day=timezone.localdate(),
    )
    if barred:
        raise InvalidInput(barred, fields={"to": [barred]})
    task.assignee = to_user
    task.claimed_by = None
    add_participant(task, actor.user.pk)
    add_participant(task, to_user.pk)
    run.touch(task)
    events.task_delegated(log=run.log, actor=actor, task=task, to_user=to_user, comment=comment)
    run.save()
    return task


def task_decide(
    *,
    task_id,
    actor: Actor,
    decision: str | None = None,
    comment: str = "",
    data: dict | None = None,
    via_event: bool = False,
    occurred_at=None,
) -> TaskInstance:
    """A person completes a human task with an outcome; a closed task raises ``Conflict``.

    Only the person ``authority.task_rights`` allows may decide. ``via_event``: a seed
    ``TaskCompleted`` from an outside system, accepted only for tasks whose spec says
    ``external_decision`` (separation of duties still applies to the calling client).
    The losing side of two simultaneous decisions gets a Conflict naming who decided; the attempt
    is still recorded in the history (as a duplicate event, committed before the error is raised).
    ``occurred_at``: when it was decided, as the sender said (on the event that records it).
    """
    with transaction.atomic():
        run, task = _lock_for_task(task_id)
        run.actor = actor
        run.log.occurred_at = occurred_at
        if via_event and not (
            task.type == TaskType.HUMAN and run.task_spec(task).external_decision
        ):
            raise Conflict(HUMAN_TASK_REFUSAL)
        if task.type == TaskType.HUMAN and task.state != TaskState.SCHEDULED:
            if not via_event and not _rights(run, task, actor).see:
                raise NotFound(f"task {task.pk} not found")
            events.task_duplicate(
                log=run.log,
                actor=actor,
                task=task,
                event="decision",
                data={"decision": decision, "comment": comment},
            )
            run.save()
            conflict = Conflict(
                f"task {task.name!r} is already {task.state}"
                + (f" by {task.decided_by.get_username()}" if task.decided_by_id else "")
            )
        else:
            conflict = None
            _open_human(run, task)
            user = actor.user
            if via_event:
                refusal = user and authority.separation_refusal(
                    user, task, process=run.process, spec=run.spec, tasks=run.tasks
                )
                if refusal:
                    raise Forbidden(refusal)
            else:
                rights = _rights(run, task, actor)
                if not rights.decide:
                    raise _refuse(rights, task, "decide")
            clean, errors = spec_module.validate_decision(run.task_spec(task), decision, data)
            errors.update(rework.refusal(run, task, decision))
            if comment is not None and not isinstance(comment, str):
                errors["comment"] = ["must be text"]
            elif comment:  # kept in the variables: the rule of any text there (spec.data)
                comment = comment.replace("\r\n", "\n")
                if problem := spec_module.text_problem(comment, multiline=True):
                    errors["comment"] = [problem]
            if errors:
                raise InvalidInput("the decision is not valid", fields=errors)
            task.decided_by = user
            result = {**clean, "comment": comment or ""}
            if decision not in (None, ""):
                result["decision"] = decision
            result["decided_by"] = user.get_username() if user is not None else actor.label
            if user is not None:
                add_participant(task, user.pk)
            _complete(run, task, result)
            rework.send_back(run, task, decision, result)
            _advance(run)
            run.save()
    if conflict is not None:
        raise conflict
    return task
