"""Repairs of an instance (retry, skip, replay or reassign a task, replay a stage, cancel,
correct the variables): each is confirmed with a reason on its own page, then calls one engine
service with the admin as actor, so it lands in the process history."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import messages
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from processes import authority, engine
from processes import spec as spec_module
from processes.admin import incidents, widgets
from processes.admin.forms import ActionForm, VariableForm, VariablePathForm, describe_field
from processes.errors import EngineError
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


@dataclass(frozen=True)
class Operation:
    """A repair the admin confirms with a reason: ``run`` calls one engine service and says
    what happened."""

    verb: str
    explanation: str
    run: Callable[[ProcessInstance, TaskInstance | None, dict, Actor], str]
    asks_stage: bool = False
    danger: bool = False  # the confirm button in red


def _cancel(process, task, data, actor):
    process = engine.process_cancel(process_id=process.pk, actor=actor, reason=data["reason"])
    if process.state == ProcessState.CANCELLING:
        return _(
            "%(process)s is cancelling: its compensations run newest first; it is cancelled "
            "once each is done or skipped."
        ) % {"process": process}
    return _("%(process)s cancelled.") % {"process": process}


def _replay_stage(process, task, data, actor):
    engine.stage_replay(
        process_id=process.pk, stage=data["stage"], actor=actor, reason=data["reason"]
    )
    return _("Stage %(stage)s of %(process)s replayed.") % {
        "stage": data["stage"],
        "process": process,
    }


def _retry(process, task, data, actor):
    if engine.task_retry(task_id=task.pk, actor=actor, reason=data["reason"]).duplicate:
        return _("Task %(task)s was already scheduled: nothing changed.") % {"task": task.name}
    return _("Task %(task)s scheduled again.") % {"task": task.name}


def _skip(process, task, data, actor):
    values = data.get("set_values") or {}
    # the values are set first, in the same transaction, so what runs next finds them
    engine.task_skip(task_id=task.pk, actor=actor, reason=data["reason"], set=values or None)
    if values:
        return _("Set %(paths)s; task %(task)s skipped.") % {
            "paths": ", ".join(values),
            "task": task.name,
        }
    return _("Task %(task)s skipped.") % {"task": task.name}


def _reassign(process, task, data, actor):
    to_user = engine.user_named(data["to_user"]) if data.get("to_user") else None
    task = engine.reassign_task(
        task_id=task.pk,
        actor=actor,
        to_user=to_user,
        to_role=data.get("to_role") or None,
        reason=data["reason"],
    )
    if task.assignee_id:
        return _("Task %(task)s reassigned to %(to)s.") % {
            "task": task.name,
            "to": task.assignee.get_username(),
        }
    return _("Task %(task)s reassigned to the role %(role)s.") % {
        "task": task.name,
        "role": task.candidate_role,
    }


def _replay(process, task, data, actor):
    engine.task_replay(task_id=task.pk, actor=actor, reason=data["reason"])
    return _("Task %(task)s replayed.") % {"task": task.name}


PROCESS_OPERATIONS = {
    "cancel": Operation(
        gettext_lazy("cancel this process"),
        gettext_lazy(
            "Every open task is cancelled, then the compensation handlers of the completed "
            "tasks run, newest first (the process is 'cancelling' until each is done or skipped)."
        ),
        _cancel,
        danger=True,
    ),
    "replay-stage": Operation(
        gettext_lazy("replay a stage"),
        gettext_lazy("The chosen stage and every later one are reset and run again."),
        _replay_stage,
        asks_stage=True,
    ),
}
TASK_OPERATIONS = {
    "retry": Operation(
        gettext_lazy("retry this task"),
        gettext_lazy("Schedule the failed task again with a fresh attempt budget."),
        _retry,
    ),
    "skip": Operation(
        gettext_lazy("skip this task"),
        gettext_lazy("Mark the task skipped: what depends on it goes on as if it were done."),
        _skip,
    ),
    "replay": Operation(
        gettext_lazy("replay this task"),
        gettext_lazy(
            "Run the task again, with what depends on it in its stage and every later stage."
        ),
        _replay,
    ),
    "reassign": Operation(
        gettext_lazy("reassign this task"),
        gettext_lazy(
            "Give the open task to another person (they hold it) or to a role (its members may "
            "claim it). Separation of duties still holds."
        ),
        _reassign,
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
    if process.state not in UNDONE_PROCESS_STATES and task.state != TaskState.PENDING:
        actions.append("replay")
    if active and task.type == TaskType.HUMAN and task.state == TaskState.SCHEDULED:
        actions.append("reassign")
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
    form = ActionForm(
        request.POST or None,
        stages=stages,
        set_paths=missing if may_correct else [],
        declared=spec_module.declared_variables(spec),
        reassign=op.run is _reassign,
    )
    if request.method == "POST" and form.is_valid():
        data = {**form.cleaned_data, "set_values": form.values_to_set()}
        try:
            note = op.run(process, task, data, Actor.for_user(request.user))
        except EngineError as exc:
            if not form.add_engine_errors(exc.fields):  # a value: shown next to its input
                model_admin.message_user(
                    request,
                    _("Could not %(verb)s: %(error)s") % {"verb": op.verb, "error": exc.message},
                    messages.ERROR,
                )
        else:
            model_admin.message_user(request, note, messages.SUCCESS)
            return HttpResponseRedirect(change_url(process))
    return model_admin.confirm_page(
        request,
        obj=process,
        title=_("%(verb)s?") % {"verb": capfirst(op.verb)},
        verb=op.verb,
        explanation=op.explanation,
        cancel_url=change_url(process),
        form=form,
        task=task,
        danger=op.danger,
        dependants=deps,
        missing=missing,
        may_correct=may_correct,
        is_skip=op.run is _skip,
    )


def correct_variables(model_admin, request, process):
    """Correct one variable at a time (as Camunda Operate does): the list of variables with
    their declared types, then, for the one chosen (``?path=``), the input of its type and a
    reason (one ``variables_changed`` event)."""
    spec = process.definition.parsed()
    path = (request.POST.get("path") or request.GET.get("path") or "").strip()
    if not path:
        return variables_page(model_admin, request, process, spec)
    if not spec_module.VAR_PATH_RE.fullmatch(path):
        model_admin.message_user(request, "not a variable path like 'bonus.amount'", messages.ERROR)
        return HttpResponseRedirect(variables_url(process))
    declared = spec_module.declared_field(spec, path)
    current = spec_module.lookup(process.variables, path)
    form = VariableForm(request.POST or None, path=path, declared=declared, current=current)
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
            placed = False
            for field, problems in (exc.fields or {}).items():
                target = "reason" if field == "reason" else "value"
                if field == "reason" or field.startswith(("set.", "unset.")):
                    form.add_error(target, problems)
                    placed = True
            if not placed:
                form.add_error(None, exc.message)
        else:
            model_admin.message_user(
                request, _("Corrected %(path)s.") % {"path": path}, messages.SUCCESS
            )
            return HttpResponseRedirect(change_url(process))
    shown = "missing" if current is spec_module.MISSING else _short(current)
    return model_admin.confirm_page(
        request,
        obj=process,
        title=_("Correct %(path)s?") % {"path": path},
        verb=_("correct %(path)s") % {"path": path},
        explanation=_(
            "%(path)s is %(kind)s; now: %(value)s. The value is checked against the definition; "
            "the change, its value before and after, and your reason are recorded in the "
            "process history."
        )
        % {"path": path, "kind": describe_field(declared), "value": shown},
        cancel_url=variables_url(process),
        form=form,
        hidden={"path": path},
    )


def variables_url(process) -> str:
    return reverse("admin:processes_processinstance_variables", args=[process.pk])


MAX_VARIABLE_ROWS = 300


def variable_rows(spec, variables: dict) -> list[dict]:
    """Each variable as a row: its path, declared type, value now; a declared one that is
    missing too. Objects are opened down to their values (lists are values)."""
    declared = spec_module.declared_variables(spec)
    rows: list[dict] = []
    stack = [(variables or {}, "")]
    seen = set()
    while stack and len(rows) < MAX_VARIABLE_ROWS:
        obj, prefix = stack.pop()
        for key in sorted(obj, reverse=True):
            path, value = f"{prefix}{key}", obj[key]
            if path not in declared and isinstance(value, dict) and value and prefix.count(".") < 5:
                stack.append((value, path + "."))
                continue
            seen.add(path)
            rows.append({"path": path, "type": describe_field(declared.get(path)),
                         "value": _short(value), "missing": False})  # fmt: skip
    rows.sort(key=lambda r: r["path"])
    for path, f in declared.items():
        if path not in seen and len(rows) < MAX_VARIABLE_ROWS:
            rows.append({"path": path, "type": describe_field(f), "value": "", "missing": True})
    return rows


def _short(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return widgets.clip(text, 200)


def variables_page(model_admin, request, process, spec):
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Variables of {process}",
        "opts": model_admin.model._meta,
        "object": process,
        "cancel_url": change_url(process),
        "rows": variable_rows(spec, process.variables),
        "path_form": VariablePathForm(),
        "declares_input": spec.input is not None,
    }
    return TemplateResponse(request, "admin/processes/processinstance/variables.html", context)
