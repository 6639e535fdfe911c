"""Repairs of an instance (retry, skip, replay a task or a stage, cancel, correct the variables):
each is confirmed with a reason on its own page, then calls one engine service with the admin as
actor, so it lands in the process history."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import messages
from django.http import HttpResponseRedirect
from django.urls import reverse

from processes import authority, engine
from processes.admin import incidents
from processes.admin.forms import ActionForm, VariablesForm
from processes.errors import EngineError
from processes.events import Actor
from processes.models import (
    ACTIVE_PROCESS_STATES,
    ProcessInstance,
    ProcessState,
    TaskInstance,
    TaskState,
)


@dataclass(frozen=True)
class Operation:
    """A repair the admin confirms with a reason: ``run`` calls one engine service and says
    what happened."""

    verb: str
    explanation: str
    run: Callable[[ProcessInstance, TaskInstance | None, dict, Actor], str]
    asks_stage: bool = False


def _cancel(process, task, data, actor):
    process = engine.process_cancel(process_id=process.pk, actor=actor, reason=data["reason"])
    if process.state == ProcessState.CANCELLING:
        return (
            f"{process} is cancelling: its compensations run newest first; it is cancelled "
            "once each is done or skipped."
        )
    return f"{process} cancelled."


def _replay_stage(process, task, data, actor):
    engine.stage_replay(
        process_id=process.pk, stage=data["stage"], actor=actor, reason=data["reason"]
    )
    return f"Stage {data['stage']} of {process} replayed."


def _retry(process, task, data, actor):
    if engine.task_retry(task_id=task.pk, actor=actor, reason=data["reason"]).duplicate:
        return f"Task {task.name} was already scheduled: nothing changed."
    return f"Task {task.name} scheduled again."


def _skip(process, task, data, actor):
    values = data.get("set_values") or {}
    if values:
        # Set first (one audited variables_changed event), so what runs next finds them.
        engine.process_correct_variables(
            process_id=process.pk, actor=actor, set=values, reason=data["reason"]
        )
    engine.task_skip(task_id=task.pk, actor=actor, reason=data["reason"])
    if values:
        return f"Set {', '.join(values)}; task {task.name} skipped."
    return f"Task {task.name} skipped."


def _replay(process, task, data, actor):
    engine.task_replay(task_id=task.pk, actor=actor, reason=data["reason"])
    return f"Task {task.name} replayed."


PROCESS_OPERATIONS = {
    "cancel": Operation(
        "cancel this process",
        "Every open task is cancelled, then the compensation handlers of the completed tasks "
        "run, newest first (the process is 'cancelling' until each is done or skipped).",
        _cancel,
    ),
    "replay-stage": Operation(
        "replay a stage",
        "The chosen stage and every later one are reset and run again.",
        _replay_stage,
        asks_stage=True,
    ),
}
TASK_OPERATIONS = {
    "retry": Operation(
        "retry this task", "Schedule the failed task again with a fresh attempt budget.", _retry
    ),
    "skip": Operation(
        "skip this task",
        "Mark the task skipped: what depends on it goes on as if it were done.",
        _skip,
    ),
    "replay": Operation(
        "replay this task",
        "Run the task again, with what depends on it in its stage and every later stage.",
        _replay,
    ),
}


def task_actions(process: ProcessInstance, task: TaskInstance) -> list[str]:
    """The repairs the task table offers on ``task`` (to those who may operate)."""
    active = process.state in ACTIVE_PROCESS_STATES
    actions = []
    cancelling = process.state == ProcessState.CANCELLING
    if (active and task.state == TaskState.FAILED) or (
        cancelling and task.state == TaskState.COMPENSATION_FAILED
    ):
        actions.append("retry")
    if (active and task.state in (TaskState.PENDING, TaskState.SCHEDULED, TaskState.FAILED)) or (
        cancelling and task.state in (TaskState.COMPENSATING, TaskState.COMPENSATION_FAILED)
    ):
        actions.append("skip")
    if (
        process.state not in (ProcessState.CANCELLED, ProcessState.CANCELLING)
        and task.state != TaskState.PENDING
    ):
        actions.append("replay")
    return actions


def change_url(process) -> str:
    return reverse("admin:processes_processinstance_change", args=[process.pk])


def operate(model_admin, request, process, op: Operation, task=None):
    """Confirm ``op`` with a reason; on POST run it as the admin and go back to the process.

    The page shows the task's error and what the repair does to the tasks after it; skipping a
    task whose results later tasks read offers to set those values (``correct_variables``)."""
    spec = process.definition.parsed()
    stages = [s.name for s in spec.stages] if op.asks_stage else None
    deps = incidents.dependants(spec, task.name) if task is not None else []
    missing = []
    may_correct = authority.has_definition_perm(
        request.user, authority.CORRECT, process.definition_key
    )
    if task is not None and op.run is _skip:
        missing = incidents.paths_to_set(deps, process.variables)
    form = ActionForm(request.POST or None, stages=stages, set_paths=missing if may_correct else [])
    if request.method == "POST" and form.is_valid():
        data = {**form.cleaned_data, "set_values": form.values_to_set()}
        try:
            note = op.run(process, task, data, Actor.for_user(request.user))
        except EngineError as exc:
            model_admin.message_user(request, f"Could not {op.verb}: {exc.message}", messages.ERROR)
        else:
            model_admin.message_user(request, note, messages.SUCCESS)
            return HttpResponseRedirect(change_url(process))
    return model_admin.confirm_page(
        request,
        obj=process,
        title=f"{op.verb.capitalize()}?",
        verb=op.verb,
        explanation=op.explanation,
        cancel_url=change_url(process),
        form=form,
        task=task,
        danger=op.verb.startswith("cancel"),
        dependants=deps,
        missing=missing,
        may_correct=may_correct,
        is_skip=op.run is _skip,
    )


def correct_variables(model_admin, request, process):
    """Correct the variables in place: the edited JSON against the stored one, with a reason
    (one ``variables_changed`` event)."""
    form = VariablesForm(request.POST or None, variables=process.variables)
    if request.method == "POST" and form.is_valid():
        try:
            engine.process_correct_variables(
                process_id=process.pk,
                actor=Actor.for_user(request.user),
                set=form.cleaned_data["set"],
                unset=form.cleaned_data["unset"],
                reason=form.cleaned_data["reason"],
            )
        except EngineError as exc:
            form.add_error(None, exc.message)
            for field, problems in (exc.fields or {}).items():
                if field == "reason":
                    form.add_error("reason", problems)
        else:
            model_admin.message_user(request, "Variables corrected.", messages.SUCCESS)
            return HttpResponseRedirect(change_url(process))
    return model_admin.confirm_page(
        request,
        obj=process,
        title="Correct the variables?",
        verb="correct the variables",
        explanation="Edit the JSON below. Only what you change is recorded, with each value "
        "before and after and your reason, in the process history.",
        cancel_url=change_url(process),
        form=form,
    )
