"""The parser: any JSON value becomes a ``ProcessSpec`` or the list of every problem, never an exception."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from processes.spec.fields import (
    LIMIT,
    _check_separation_of_duties,
    _Collector,
    _is_number,
    _known_handlers_default,
    _opt_str,
    _parse_escalation,
    _parse_human_rules,
    _parse_retry,
    _parse_summary,
    parse_iso_duration,
    parse_retention,
    slugify_key,
    validate_condition,
)
from processes.spec.flow import _check_rework, _parse_call, _parse_outcomes
from processes.spec.labels import parse_label
from processes.spec.limits import max_tasks, storage_problems
from processes.spec.parents import check_parents
from processes.spec.schedule import parse_schedule
from processes.spec.search import parse_search
from processes.spec.typed_fields import _parse_form, parse_fields
from processes.spec.types import (
    BUSINESS_KEY_UNIQUE,
    KEY_RE,
    KNOWN_TASK_FIELDS,
    NAME_RE,
    ON_FAILURE,
    ON_TIMEOUT,
    TASK_TYPES,
    VAR_PATH_RE,
    VISIBILITIES,
    ProcessSpec,
    SpecError,
    SpecValidationError,
    StageSpec,
    TaskSpec,
)
from processes.spec.waits import is_extra, parse_waits

# known_handlers=ANY_HANDLER: don't check handler names (a stored, published spec is read back
# in a process that may not have imported every handler module, e.g. the web server).
ANY_HANDLER = object()


def parse(
    data: Any, *, known_handlers: Iterable[str] | None | object = None
) -> tuple[ProcessSpec | None, list[SpecError]]:
    """Return (spec, []) for a valid definition, or (None, errors) listing every problem.

    ``known_handlers``: the handler names to accept; None: the step registry's."""
    c = _Collector()
    problems = storage_problems(data)
    if problems:  # values that can't be stored or computed with: nothing else is looked at
        return None, [SpecError(path, message) for path, message in problems]
    if known_handlers is ANY_HANDLER:
        handlers = None
    elif known_handlers is not None:
        handlers = set(known_handlers)
    else:
        handlers = _known_handlers_default()
    try:
        spec = _parse(data, c, handlers)
    except RecursionError:
        c.add("", "definition is nested too deeply")
        spec = None
    if c.errors:
        return None, c.errors
    return spec, []


def parse_or_raise(data: Any, **kwargs) -> ProcessSpec:
    spec, errors = parse(data, **kwargs)
    if errors:
        raise SpecValidationError(errors)
    return spec


def _parse(data: Any, c: _Collector, handlers: set[str] | None) -> ProcessSpec | None:
    if not isinstance(data, dict):
        c.add("", "a definition must be a JSON object with 'stages'")
        return None
    name = data.get("workflow_name", data.get("name"))
    if not isinstance(name, str) or not name.strip():
        c.add("workflow_name", "is required: a non-empty string naming the process")
        name = ""
    component = _opt_str(c, data, "component_name", "")
    key = data.get("key")
    if key is None:
        key = slugify_key(component or name or "process")
    elif not isinstance(key, str) or not KEY_RE.fullmatch(key):
        c.add("key", "must be lower-case letters, digits, '-', '_' or '.' (max 100)")
        key = "process"
    description = data.get("description", "")
    if not isinstance(description, str):
        c.add("description", "must be a string")
        description = ""
    on_error = data.get("on_error", {"notify": True})
    notify = True
    if isinstance(on_error, dict) and isinstance(on_error.get("notify", True), bool):
        notify = on_error.get("notify", True)
    else:
        c.add("on_error", "must be an object {notify: true|false}")

    visibility = data.get("visibility", "participants")
    if visibility not in VISIBILITIES:
        c.add("visibility", f"must be one of: {', '.join(VISIBILITIES)}")
        visibility = "participants"
    unique = data.get("business_key_unique", "active")
    if unique not in BUSINESS_KEY_UNIQUE:
        c.add("business_key_unique", f"must be one of: {', '.join(BUSINESS_KEY_UNIQUE)}")
        unique = "active"
    on_failure = data.get("on_failure", "incident")
    if on_failure not in ON_FAILURE:
        c.add("on_failure", f"must be one of: {', '.join(ON_FAILURE)}")
        on_failure = "incident"

    deadline = None
    if data.get("deadline") is not None:
        deadline = parse_iso_duration(data["deadline"])
        if deadline is None or deadline.total_seconds() <= 0:
            c.add("deadline", "bad duration: use ISO-8601 like 'P5D' or seconds")
            deadline = None
    retention = None
    if data.get("retention") is not None:
        retention = parse_retention(data["retention"])
        if retention is None:
            c.add(
                "retention",
                "must be an ISO 8601 duration of whole years, months, weeks or days, "
                "e.g. 'P7Y' or 'P90D'",
            )

    stages_raw = data.get("stages")
    if not isinstance(stages_raw, list) or not stages_raw:
        c.add("stages", "is required: a non-empty list of stages")
        return None

    limit = max_tasks()
    count = sum(
        len(s["tasks"]) if isinstance(s, dict) and isinstance(s.get("tasks"), list) else 1
        for s in stages_raw
    )
    if len(stages_raw) > limit or count > limit:
        c.add("stages", f"at most {limit} tasks in all (FLOWDESK_MAX_TASKS); this has {count}")
        return None

    stage_names: dict[str, int] = {}
    stage_orders: dict[float, int] = {}
    task_names: dict[str, str] = {}
    stages: list[StageSpec] = []
    for si, stage_raw in enumerate(stages_raw):
        spath = f"stages[{si}]"
        if not isinstance(stage_raw, dict):
            c.add(spath, "must be an object {stage_name, stage_order, tasks}")
            continue
        sname = stage_raw.get("stage_name")
        if not isinstance(sname, str) or not NAME_RE.fullmatch(sname):
            c.add(f"{spath}.stage_name", "is required: letters, digits, '_', ' ', '.', ':', '-'")
            sname = None
        elif sname in stage_names:
            c.add(
                f"{spath}.stage_name",
                f"duplicate stage name {sname!r} (also stages[{stage_names[sname]}])",
            )
        else:
            stage_names[sname] = si
        order = stage_raw.get("stage_order")
        if not _is_number(order):
            c.add(f"{spath}.stage_order", "is required: a number giving the stage's position")
            order = None
        elif float(order) in stage_orders:
            c.add(
                f"{spath}.stage_order",
                f"duplicate stage_order {order} (also stages[{stage_orders[float(order)]}])",
            )
        else:
            stage_orders[float(order)] = si
        tasks_raw = stage_raw.get("tasks", [])
        if tasks_raw is None:
            tasks_raw = []
        if not isinstance(tasks_raw, list):
            c.add(f"{spath}.tasks", "must be a list of tasks")
            tasks_raw = []
        tasks = []
        for ti, task_raw in enumerate(tasks_raw):
            task = _parse_task(c, task_raw, f"{spath}.tasks[{ti}]", sname or "", handlers)
            if task is None:
                continue
            if task.name in task_names:
                c.add(
                    f"{spath}.tasks[{ti}].task_name",
                    f"duplicate task name {task.name!r} (also {task_names[task.name]})",
                )
                continue
            task_names[task.name] = f"{spath}.tasks[{ti}]"
            tasks.append(task)
        check_parents(c, tasks, spath, task_names)
        if sname is not None and order is not None:
            stages.append(StageSpec(name=sname, order=float(order), tasks=tuple(tasks)))
    _check_separation_of_duties(c, stages, task_names)
    _check_rework(c, stages_raw, stages)
    declared_input = _parse_input(c, data, task_names)
    search = parse_search(c, data.get("search"))
    schedule = parse_schedule(c, data.get("schedule"))
    if c.errors:
        return None
    stages.sort(key=lambda s: s.order)
    if not any(s.tasks for s in stages):
        c.add("stages", "at least one stage must have a task")
        return None
    return ProcessSpec(
        key=key,
        name=name,
        component_name=component,
        stages=tuple(stages),
        description=description,
        on_error_notify=notify,
        visibility=visibility,
        business_key_unique=unique,
        on_failure=on_failure,
        deadline=deadline,
        retention=retention,
        input=declared_input,
        search=search,
        schedule=schedule,
        raw=data,
    )


def _parse_input(c: _Collector, data: dict, task_names: dict[str, str]):
    """The definition's ``input`` fields; None when it declares none (free-form input). A
    field can't be named like a task: the task's result is stored under its name."""
    if data.get("input") is None:
        return None
    fields = parse_fields(c, data["input"], "input", dotted=True)
    if not fields:  # none, or parse_fields said what is wrong (not a list, too many fields)
        return fields
    index_of = {
        item.get("name"): i
        for i, item in reversed(list(enumerate(data["input"])))
        if isinstance(item, dict) and isinstance(item.get("name"), str)
    }
    for f in fields:
        root = f.name.split(".", 1)[0]
        if root in task_names:
            c.add(
                f"input[{index_of[f.name]}].name",
                f"{root!r} is the name of a task ({task_names[root]}): its result goes there",
            )
        elif root == "rework":
            c.add(f"input[{index_of[f.name]}].name", "'rework' is reserved: rework loops set it")
    return fields


def _parse_task(
    c: _Collector, raw: Any, path: str, stage: str, handlers: set[str] | None
) -> TaskSpec | None:
    if not isinstance(raw, dict):
        c.add(path, "must be an object {task_name, task_type, parent_task, ...}")
        return None
    name = raw.get("task_name")
    if not isinstance(name, str) or not VAR_PATH_RE.fullmatch(name) or "." in name:
        c.add(f"{path}.task_name", "is required: letters, digits and '_'")
        return None
    ttype = raw.get("task_type", "SERVICE")
    if not isinstance(ttype, str) or ttype.upper() not in TASK_TYPES:
        c.add(f"{path}.task_type", f"must be one of {', '.join(TASK_TYPES)}")
        ttype = "SERVICE"
    ttype = ttype.upper()
    parents_raw = raw.get("parent_task", [])
    if parents_raw is None:
        parents_raw = []
    if isinstance(parents_raw, str):
        parents_raw = [parents_raw]
    parents: list[str] = []
    if not isinstance(parents_raw, list):
        c.add(f"{path}.parent_task", "must be a list of task names")
    else:
        for pi, parent in enumerate(parents_raw):
            if not isinstance(parent, str) or not parent:
                c.add(f"{path}.parent_task[{pi}]", "must be a task name")
            elif parent in parents:
                c.add(f"{path}.parent_task[{pi}]", f"parent {parent!r} listed twice")
            else:
                parents.append(parent)
    task_queue = _opt_str(c, raw, "task_queue", path)
    business_status = _opt_str(c, raw, "business_status", path)
    waiting_status = _opt_str(c, raw, "waiting_status", path)
    assigned_to = _opt_str(c, raw, "assigned_to", path, pattern=NAME_RE)
    assignee = _opt_str(c, raw, "assignee", path, pattern=VAR_PATH_RE)
    handler = _opt_str(c, raw, "handler", path)
    if handler and handlers is not None and handler not in handlers:
        c.add(f"{path}.handler", f"unknown handler {handler!r}")
    if handler and ttype == "HUMAN":
        c.add(f"{path}.handler", "a HUMAN task has no handler")
    compensate = _opt_str(c, raw, "compensate", path)
    if compensate and handlers is not None and compensate not in handlers:
        c.add(f"{path}.compensate", f"unknown handler {compensate!r}")
    if ttype == "HUMAN" and not assigned_to:
        c.add(f"{path}.assigned_to", "a HUMAN task needs the role (assigned_to) that may act on it")
    retry = _parse_retry(c, raw.get("retry"), f"{path}.retry")
    timeout = None
    if raw.get("timeout") is not None:
        timeout = parse_iso_duration(raw["timeout"])
        if timeout is None or timeout.total_seconds() <= 0:
            c.add(f"{path}.timeout", "bad duration: use ISO-8601 like 'PT30S' or seconds" + LIMIT)
            timeout = None
    due = None
    if raw.get("due") is not None:
        due = parse_iso_duration(raw["due"])
        if due is None or due.total_seconds() <= 0:
            c.add(f"{path}.due", "bad duration: use ISO-8601 like 'P2D' or seconds" + LIMIT)
            due = None
    condition = raw.get("condition")
    if condition is not None:
        validate_condition(condition, f"{path}.condition", c)
    outcomes, rework, outcome_labels = _parse_outcomes(
        c, raw.get("outcomes", []), f"{path}.outcomes", ttype
    )
    form = _parse_form(c, raw.get("form"), f"{path}.form")
    if form and ttype != "HUMAN":
        c.add(f"{path}.form", "only a HUMAN task has a form")
    escalation = _parse_escalation(c, raw.get("escalation"), f"{path}.escalation")
    if escalation and ttype != "HUMAN":
        c.add(f"{path}.escalation", "only a HUMAN task escalates")
    on_error = raw.get("on_error", {})
    notify = True
    if isinstance(on_error, dict) and isinstance(on_error.get("notify", True), bool):
        notify = on_error.get("notify", True)
    else:
        c.add(f"{path}.on_error", "must be an object {notify: true|false}")
    label = parse_label(c, raw.get("label", ""), f"{path}.label")
    task_description = raw.get("description", "")
    if not isinstance(task_description, str):
        c.add(f"{path}.description", "must be a string")
        task_description = ""
    not_by, not_by_var, show, external = _parse_human_rules(c, raw, path, ttype)
    call = _parse_call(c, raw.get("process"), f"{path}.process", ttype)
    if ttype == "PROCESS" and handler:
        c.add(f"{path}.handler", "a PROCESS task has no handler: it starts a child process")
    on_timeout = raw.get("on_timeout", "incident")
    if on_timeout not in ON_TIMEOUT:
        c.add(f"{path}.on_timeout", f"must be one of: {', '.join(ON_TIMEOUT)}")
        on_timeout = "incident"
    elif "on_timeout" in raw and not (
        (ttype == "SERVICE" and not handler and timeout is not None)
        or (ttype == "HUMAN" and due is not None and escalation is None)
    ):
        c.add(
            f"{path}.on_timeout",
            "applies to an external task with a timeout or a HUMAN task with a due and no "
            "escalation",
        )
    summary = _parse_summary(c, raw.get("summary"), f"{path}.summary")
    if summary and ttype != "HUMAN":
        c.add(f"{path}.summary", "only a HUMAN task has a summary")
    explain = _parse_summary(c, raw.get("explain"), f"{path}.explain")
    if explain and ttype != "HUMAN":
        c.add(f"{path}.explain", "only a HUMAN task explains an amount")
    inline = _parse_inline(c, raw, path, ttype, handler)
    if inline and waiting_status:
        c.add(f"{path}.waiting_status", "an inline step never waits: it has no waiting status")
        waiting_status = None
    result = None
    if raw.get("result") is not None:
        result = parse_fields(c, raw["result"], f"{path}.result", dotted=True)
        if ttype not in ("SERVICE", "MESSAGE"):
            c.add(f"{path}.result", "only a SERVICE or MESSAGE task declares its result")
    wait, until, message = parse_waits(c, raw, path, ttype, handler)
    extra = {k: v for k, v in raw.items() if k not in KNOWN_TASK_FIELDS or is_extra(k, ttype)}
    return TaskSpec(
        name=name,
        type=ttype,
        stage=stage,
        parents=tuple(parents),
        task_queue=task_queue,
        business_status=business_status,
        waiting_status=waiting_status,
        assigned_to=assigned_to,
        assignee=assignee,
        handler=handler,
        retry=retry,
        timeout=timeout,
        condition=condition,
        outcomes=outcomes,
        outcome_labels=outcome_labels,
        rework=rework,
        call=call,
        form=form,
        escalation=escalation,
        due=due,
        compensate=compensate,
        notify_on_error=notify,
        label=label,
        description=task_description,
        not_by=not_by,
        not_by_var=not_by_var,
        show=show,
        external_decision=external,
        on_timeout=on_timeout,
        summary=summary,
        explain=explain,
        inline=inline,
        result=result,
        wait=wait,
        until=until,
        message=message,
        extra=extra,
    )


def _parse_inline(c: _Collector, raw: dict, path: str, ttype: str, handler) -> bool:
    """``inline``: only a SERVICE task with a handler runs inside the engine's transaction."""
    inline = raw.get("inline", False)
    if not isinstance(inline, bool):
        c.add(f"{path}.inline", "must be true or false")
        return False
    if inline and (ttype != "SERVICE" or not handler):
        c.add(
            f"{path}.inline",
            "only a SERVICE task with a handler runs inline (a pure-compute step)",
        )
        return False
    return inline
