"""Repairs and decisions of operators (admin, API, the seed's TaskPending): retry, skip,
replay a task or a stage, reassign a human task, cancel a process, correct its variables."""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from processes import authority, events
from processes import spec as spec_module
from processes.engine import attachments, compensation, waits
from processes.engine._run import (
    WAITING_TYPES,
    TaskResult,
    _advance,
    _lock,
    _lock_for_task,
    _maybe_resolve_incident,
    _require_grant,
    _Run,
    _stage_tasks,
    _transition,
)
from processes.engine.assignment import add_participant
from processes.errors import Conflict, Forbidden, InvalidInput, NotFound
from processes.events import Actor
from processes.models import (
    ACTIVE_PROCESS_STATES,
    UNDONE_PROCESS_STATES,
    ProcessInstance,
    ProcessState,
    TaskInstance,
    TaskState,
    TaskType,
)

logger = logging.getLogger(__name__)


@transaction.atomic
def process_cancel(*, process_id, actor: Actor, reason: str = "") -> ProcessInstance:
    """Cancel every open task; the completed ones with a ``compensate`` handler are then undone
    by the workers, newest first (``cancelling``), before the process is ``cancelled``."""
    run = _lock(process_id)
    run.actor = actor
    _require_grant(actor, authority.OPERATE, run.process.definition_key, "cancel processes")
    process = run.process
    if process.state not in ACTIVE_PROCESS_STATES:
        raise Conflict(f"cannot cancel process: it is {process.state}")
    compensation.cancel_open_tasks(run)
    if not compensation.plan_compensations(run, reason):
        _transition(process, "cancel")
        events.process_cancelled(log=run.log, actor=actor, reason=reason)
    run.save()
    return process


@transaction.atomic
def task_retry(*, task_id, actor: Actor, reason: str = "") -> TaskResult:
    """Schedule a failed task again with a fresh attempt budget; a scheduled one is a duplicate."""
    run, task = _lock_for_task(task_id)
    run.actor = actor
    _require_grant(actor, authority.OPERATE, run.process.definition_key, "retry tasks")
    if task.state == TaskState.SCHEDULED:
        events.task_duplicate(log=run.log, actor=actor, task=task, event="TaskPending")
        run.save()
        return TaskResult(task, duplicate=True)
    if task.state == TaskState.COMPENSATION_FAILED:
        compensation.compensation_retry(run, task, reason)
        run.save()
        return TaskResult(task)
    if run.process.state not in ACTIVE_PROCESS_STATES:
        raise Conflict(f"process is {run.process.state}")
    _transition(task, "retry")
    run.touch(task)
    events.task_retried(log=run.log, actor=actor, task=task, reason=reason)
    if task.handler:
        task.wake_at = timezone.now() + dt.timedelta(seconds=settings.FLOWDESK_REENQUEUE_AFTER)
        run.to_enqueue.append(task)
    elif task.type in WAITING_TYPES:  # its timer or its wait, from now, as when scheduled
        waits.start_waiting(run, task, run.task_spec(task), timezone.now())
        if task.type == TaskType.MESSAGE:
            waits.take_buffered(run, task)
    _maybe_resolve_incident(run)
    run.save()
    return TaskResult(task)


@transaction.atomic
def task_skip(*, task_id, actor: Actor, reason: str, set: dict | None = None) -> TaskInstance:
    """Skip a pending, scheduled or failed task (a person decided it isn't needed).

    ``set``: variable values what runs next needs in place of the skipped task's results
    ("bonus.amount"); set first, in the same transaction, by the rules of
    ``process_correct_variables`` (its grant, each value checked against the definition, one
    ``variables_changed`` event with the same reason)."""
    if not reason or not reason.strip():
        raise InvalidInput("a reason is required to skip a task", fields={"reason": ["required"]})
    if set:
        set, _ = _correction_input(set, (), reason)
    run, task = _lock_for_task(task_id)
    run.actor = actor
    _require_grant(actor, authority.OPERATE, run.process.definition_key, "skip tasks")
    if task.state in (TaskState.COMPENSATING, TaskState.COMPENSATION_FAILED) and not set:
        compensation.compensation_skip(run, task, reason)
        run.save()
        return task
    if run.process.state not in ACTIVE_PROCESS_STATES:
        raise Conflict(f"process is {run.process.state}")
    if set:
        _correct(run, actor, set, (), reason)
    _transition(task, "skip")
    run.touch(task)
    events.task_skipped(
        log=run.log, actor=actor, task=task, reason=reason, cause=events.SKIP_OPERATOR
    )
    _maybe_resolve_incident(run)
    _advance(run)
    run.save()
    return task


def _reset(run: _Run, task: TaskInstance, reason: str) -> None:
    if task.state == TaskState.PENDING:
        return
    task.reset()
    run.touch(task)
    events.task_reset(log=run.log, actor=run.actor, task=task, reason=reason)


def _replay_from(run: _Run, stage: str, resets: list[TaskInstance], reason: str) -> None:
    process = run.process
    if process.state in UNDONE_PROCESS_STATES:
        raise Conflict(f"a {process.state} process cannot be replayed")
    for task in resets:
        _reset(run, task, reason)
    if process.state == ProcessState.COMPLETED:
        _transition(process, "reopen")
        events.process_reopened(log=run.log, actor=run.actor, reason=reason, stage=stage)
    elif process.current_stage != stage:
        events.process_reopened(log=run.log, actor=run.actor, reason=reason, stage=stage)
    process.current_stage = stage
    _maybe_resolve_incident(run)
    _advance(run)


@transaction.atomic
def stage_replay(*, process_id, stage: str, actor: Actor, reason: str = "") -> ProcessInstance:
    """Run ``stage`` and every later stage again (the seed's "replay events for a stage")."""
    run = _lock(process_id)
    run.actor = actor
    _require_grant(actor, authority.OPERATE, run.process.definition_key, "replay stages")
    try:
        index = run.spec.stage_index(stage)
    except ValueError:
        raise NotFound(f"unknown stage {stage!r}") from None
    resets = [t for t in run.tasks.values() if t.stage_index >= index]
    _replay_from(run, stage, resets, reason or f"replay stage {stage}")
    run.save()
    return run.process


@transaction.atomic
def task_replay(*, task_id, actor: Actor, reason: str = "") -> TaskInstance:
    """Run one task again, with what depends on it in its stage and every later stage."""
    run, task = _lock_for_task(task_id)
    run.actor = actor
    _require_grant(actor, authority.OPERATE, run.process.definition_key, "replay tasks")
    downstream = {task.name}
    stage_tasks = _stage_tasks(run, task.stage)
    grew = True
    while grew:
        grew = False
        for other in stage_tasks:
            if other.name not in downstream and downstream & set(run.task_spec(other).parents):
                downstream.add(other.name)
                grew = True
    resets = [
        t for t in run.tasks.values() if t.name in downstream or t.stage_index > task.stage_index
    ]
    _replay_from(run, task.stage, resets, reason or f"replay task {task.name}")
    run.save()
    return task


MAX_REASON = 1000


@transaction.atomic
def process_correct_variables(
    *, process_id, actor: Actor, set: dict | None = None, unset=(), reason: str
) -> ProcessInstance:
    """Correct the variables of an active process: ``set`` maps variable paths ("bonus.amount")
    to new values, ``unset`` lists paths to remove. Needs the ``correct_variables`` grant and a
    reason; recorded as one ``variables_changed`` event with each path's value before and after.
    Each value is checked against what the definition declares at its path (and converted to
    that type: "409.3" for a decimal with 2 places becomes "409.30"), free-form values by the
    check every undeclared value passes.
    """
    changes, unset = _correction_input(set, unset, reason)
    run = _lock(process_id)
    run.actor = actor
    _correct(run, actor, changes, unset, reason)
    run.save()
    return run.process


def _correction_input(changes, unset, reason: str) -> tuple[dict, tuple]:
    """The shape of a correction (before any lock): a reason, a ``set`` object, an ``unset``
    list, variable paths; ``InvalidInput`` naming each field otherwise."""
    changes = changes if changes is not None else {}
    errors: dict[str, list[str]] = {}
    if not isinstance(reason, str) or not reason.strip():
        errors["reason"] = ["a reason is required: it is kept in the history"]
    elif len(reason) > MAX_REASON:
        errors["reason"] = [f"at most {MAX_REASON} characters"]
    if not isinstance(changes, dict):
        errors["set"] = ["must be an object mapping variable paths to values"]
        changes = {}
    if not isinstance(unset, list | tuple) or not all(isinstance(p, str) for p in unset):
        errors["unset"] = ["must be a list of variable paths"]
        unset = ()
    for path in [*changes, *unset]:
        if not spec_module.VAR_PATH_RE.fullmatch(path):
            errors.setdefault(f"set.{path}" if path in changes else "unset", []).append(
                "not a variable path like 'bonus.amount'"
            )
    if not changes and not unset and "set" not in errors:
        errors["set"] = ["name at least one variable to set or unset"]
    if errors:
        raise InvalidInput("the correction is not valid", fields=errors)
    return changes, tuple(unset)


def _correct(run: _Run, actor: Actor, asked: dict, unset, reason: str) -> None:
    """Apply a checked correction to the locked ``run``: the grant, the process's state, each
    value against the definition, one ``variables_changed`` event."""
    process = run.process
    if actor.user is not None and not authority.has_definition_perm(
        actor.user, authority.CORRECT, process.definition_key
    ):
        raise Forbidden(f"you may not correct variables of {process.definition_key!r} processes")
    if process.state not in ACTIVE_PROCESS_STATES:
        raise Conflict(f"process is {process.state}: its variables are history now")
    changes, problems = spec_module.check_variable_changes(run.spec, asked, unset)
    problems.update(attachments.unknown_files(process, run.spec, changes))
    if problems:
        raise InvalidInput(
            "the correction does not fit the definition: "
            + "; ".join(f"{path}: {messages[0]}" for path, messages in list(problems.items())[:5]),
            fields={
                (f"set.{path}" if _under(path, asked) else f"unset.{path}"): messages
                for path, messages in problems.items()
            },
        )
    variables, diff = spec_module.apply_variable_changes(process.variables, changes, unset)
    if diff is None:
        raise InvalidInput(
            "a path goes through a value that is not an object",
            fields={"set": ["a path goes through a value that is not an object"]},
        )
    if not diff:
        raise InvalidInput("no variable would change", fields={"set": ["no variable would change"]})
    process.variables = variables
    events.variables_changed(log=run.log, actor=actor, changes=diff, reason=reason.strip())


def _under(path: str, asked: dict) -> bool:
    """``path`` is one of the set paths, or inside one's value (``bonus`` set, ``bonus.amount``)."""
    return any(path == p or path.startswith(p + ".") for p in asked)


def user_named(username: str, *, field: str = "to_user"):
    """Whom a reassignment names, by username (the admin's form and the API alike); an unknown
    name is an error at ``field``."""
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise InvalidInput(gettext("unknown user"), fields={field: [gettext("unknown user")]})
    return user


@transaction.atomic
def reassign_task(
    *, task_id, actor: Actor, to_user=None, to_role: str | None = None, reason: str
) -> TaskInstance:
    """Give an open human task to another person or role (an operator's repair, an absence).

    Needs ``operate_process`` on the definition (the system, e.g. an absence rule, always may)
    and a reason, kept in the ``task_reassigned`` event with who and which role had the task.
    To a person: they hold it (any claim ends), unless separation of duties bars them; to a
    role: nobody holds it and the role's members may claim it. Exactly one of the two.
    """
    errors: dict[str, list[str]] = {}
    if not isinstance(reason, str) or not reason.strip():
        errors["reason"] = ["a reason is required: it is kept in the history"]
    elif len(reason) > MAX_REASON:
        errors["reason"] = [f"at most {MAX_REASON} characters"]
    if (to_user is None) == (not to_role):
        errors["to_user"] = ["name either a person (to_user) or a role (to_role), not both"]
    elif to_user is not None and not to_user.is_active:
        errors["to_user"] = ["unknown or inactive user"]
    elif to_role and not Group.objects.filter(name=to_role).exists():
        errors["to_role"] = [f"no role named {to_role!r}"]
    if errors:
        raise InvalidInput("the reassignment is not valid", fields=errors)
    run, task = _lock_for_task(task_id)
    run.actor = actor
    _require_grant(actor, authority.OPERATE, run.process.definition_key, "reassign tasks")
    if task.type != TaskType.HUMAN:
        raise Conflict(f"task {task.name!r} is not a human task")
    if task.state != TaskState.SCHEDULED or run.process.state not in ACTIVE_PROCESS_STATES:
        raise Conflict(f"task {task.name!r} is {task.state}: only an open task is reassigned")
    before_user = task.claimed_by or task.assignee
    before_role = task.candidate_role
    if to_user is not None:
        if authority.holder_id(task) == to_user.pk:
            raise Conflict(f"task is held by {to_user.get_username()} already")
        barred = authority.separation_refusal(
            to_user, task, process=run.process, spec=run.spec, tasks=run.tasks, person=to_user
        )
        if barred:
            raise InvalidInput(barred, fields={"to_user": [barred]})
        task.assignee = to_user
        add_participant(task, to_user.pk)
    else:
        if to_role == before_role and authority.holder_id(task) is None:
            raise Conflict(f"task is with the role {to_role} already")
        task.candidate_role = to_role
        task.assignee = None
    task.claimed_by = None
    run.touch(task)
    events.task_reassigned(
        log=run.log,
        actor=actor,
        task=task,
        from_user=before_user,
        from_role=before_role,
        reason=reason.strip(),
    )
    run.save()
    return task


def children_cancel(*, process_id) -> list:
    """Cancel every active child of the cancelled process ``process_id``, each in its own
    transaction (children first in the lock order; a worker's queued work, safe to run twice);
    one that finished meanwhile is left alone. Returns the ids cancelled."""
    done = []
    for child_id in ProcessInstance.objects.filter(
        parent_id=process_id, state__in=ACTIVE_PROCESS_STATES
    ).values_list("id", flat=True):
        try:
            process_cancel(
                process_id=child_id,
                actor=Actor.system("parent cancelled"),
                reason="parent cancelled",
            )
        except Conflict:
            continue  # it completed between the query and its lock
        except Exception:
            logger.exception("could not cancel child %s of %s", child_id, process_id)
            continue
        done.append(child_id)
    return done
