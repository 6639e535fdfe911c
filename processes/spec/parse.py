"""The parser: any JSON value becomes a ``ProcessSpec`` or the list of every problem, never an exception."""

from __future__ import annotations

import re
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
    _parse_form,
    _parse_human_rules,
    _parse_retry,
    _parse_summary,
    parse_iso_duration,
    parse_retention,
    slugify_key,
    validate_condition,
)
from processes.spec.limits import max_tasks, storage_problems
from processes.spec.types import (
    BUSINESS_KEY_UNIQUE,
    DEFAULT_MAX_ROUNDS,
    KEY_RE,
    KNOWN_TASK_FIELDS,
    MAX_ROUNDS_LIMIT,
    NAME_RE,
    ON_TIMEOUT,
    TASK_TYPES,
    VAR_PATH_RE,
    VISIBILITIES,
    CallSpec,
    ProcessSpec,
    ReworkSpec,
    SpecError,
    SpecValidationError,
    StageSpec,
    TaskSpec,
)

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
        _check_parents(c, tasks, spath, task_names)
        if sname is not None and order is not None:
            stages.append(StageSpec(name=sname, order=float(order), tasks=tuple(tasks)))
    _check_separation_of_duties(c, stages, task_names)
    _check_rework(c, stages_raw, stages)
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
        deadline=deadline,
        retention=retention,
        raw=data,
    )


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
    outcomes, rework = _parse_outcomes(c, raw.get("outcomes", []), f"{path}.outcomes", ttype)
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
    label = raw.get("label", "")
    if not isinstance(label, str):
        c.add(f"{path}.label", "must be a string")
        label = ""
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
    extra = {k: v for k, v in raw.items() if k not in KNOWN_TASK_FIELDS}
    return TaskSpec(
        name=name,
        type=ttype,
        stage=stage,
        parents=tuple(parents),
        task_queue=task_queue,
        business_status=business_status,
        assigned_to=assigned_to,
        assignee=assignee,
        handler=handler,
        retry=retry,
        timeout=timeout,
        condition=condition,
        outcomes=outcomes,
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
        extra=extra,
    )


def _parse_outcomes(c: _Collector, raw: Any, path: str, ttype: str):
    """A list of outcome names, or an object outcome -> options, where ``{"goto": stage,
    "max_rounds": n}`` makes the outcome a rework loop. Returns (names, rework specs)."""
    if not raw:
        return (), ()
    if ttype != "HUMAN":
        c.add(path, "only a HUMAN task has outcomes")
        return (), ()
    if isinstance(raw, list):
        if not all(isinstance(o, str) and VAR_PATH_RE.match(o) for o in raw) or len(
            set(raw)
        ) != len(raw):
            c.add(path, "must be a list of distinct identifiers like 'approve'")
            return (), ()
        return tuple(raw), ()
    if not isinstance(raw, dict):
        c.add(path, "must be a list of outcomes or an object outcome -> options")
        return (), ()
    names, rework = [], []
    for name, options in raw.items():
        if not VAR_PATH_RE.match(name):
            c.add(f"{path}.{name}", "an outcome is an identifier like 'approve'")
            continue
        names.append(name)
        if options is None:
            continue
        if not isinstance(options, dict):
            c.add(f"{path}.{name}", "must be an object ({} or {goto, max_rounds})")
            continue
        unknown = sorted(set(options) - {"goto", "max_rounds"})
        if unknown:
            c.add(f"{path}.{name}", f"unknown option {unknown[0]!r}: only goto and max_rounds")
        goto = options.get("goto")
        if "max_rounds" in options and goto is None:
            c.add(f"{path}.{name}.max_rounds", "max_rounds needs goto")
        if goto is None:
            continue
        if not isinstance(goto, str) or not goto:
            c.add(f"{path}.{name}.goto", "must be the name of an earlier stage")
            continue
        rounds = options.get("max_rounds", DEFAULT_MAX_ROUNDS)
        if (
            isinstance(rounds, bool)
            or not isinstance(rounds, int)
            or not (2 <= rounds <= MAX_ROUNDS_LIMIT)
        ):
            c.add(
                f"{path}.{name}.max_rounds",
                f"must be a whole number from 2 to {MAX_ROUNDS_LIMIT} (rounds in all)",
            )
            rounds = DEFAULT_MAX_ROUNDS
        rework.append(ReworkSpec(outcome=name, goto=goto, max_rounds=rounds))
    return tuple(names), tuple(rework)


BUSINESS_KEY_TEMPLATE_RE = re.compile(r"(?:[^{}]|\{[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*\})+")


def _parse_call(c: _Collector, raw: Any, path: str, ttype: str) -> CallSpec | None:
    """A PROCESS task's ``process``: {definition, version?, for_each?, input?, output?,
    business_key?}."""
    if ttype != "PROCESS":
        if raw is not None:
            c.add(path, "only a PROCESS task starts a child process")
        return None
    if not isinstance(raw, dict):
        c.add(path, "is required: {definition, version, for_each, input, output}")
        return None
    unknown = sorted(
        set(raw) - {"definition", "version", "for_each", "input", "output", "business_key"}
    )
    for name in unknown:
        c.add(f"{path}.{name}", "unknown field")
    key = raw.get("definition")
    if not isinstance(key, str) or not KEY_RE.match(key):
        c.add(f"{path}.definition", "is required: the key of the child's definition")
        key = ""
    version = raw.get("version")
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 1
    ):
        c.add(f"{path}.version", "must be a version number, or left out for the newest")
        version = None
    paths = {}
    for name in ("for_each", "business_key"):
        value = raw.get(name)
        if name == "business_key" and isinstance(value, str) and "{" in value:
            if not BUSINESS_KEY_TEMPLATE_RE.fullmatch(value):
                c.add(f"{path}.{name}", "a template like 'SAL-{period}-{item}' of variable paths")
                value = None
        elif value is not None and (not isinstance(value, str) or not VAR_PATH_RE.match(value)):
            c.add(f"{path}.{name}", "must be a variable path like 'employees'")
            value = None
        paths[name] = value
    maps = {}
    for name in ("input", "output"):
        value = raw.get(name, {})
        pairs = []
        if not isinstance(value, dict):
            c.add(f"{path}.{name}", "must be an object: name -> variable path")
        else:
            for target, source in value.items():
                if not VAR_PATH_RE.match(target) or "." in target:
                    c.add(f"{path}.{name}.{target}", "must be a variable name")
                elif not isinstance(source, str) or not VAR_PATH_RE.match(source):
                    c.add(f"{path}.{name}.{target}", "must be a variable path like 'item.id'")
                else:
                    pairs.append((target, source))
        maps[name] = tuple(pairs)
    return CallSpec(
        definition=key,
        version=version,
        for_each=paths["for_each"],
        input=maps["input"],
        output=maps["output"],
        business_key=paths["business_key"],
    )


def _check_rework(c: _Collector, stages_raw: list, stages: list[StageSpec]) -> None:
    """A rework loop goes back to its own stage or an earlier one."""
    order = {s.name: s.order for s in stages}
    for stage in stages:
        for task in stage.tasks:
            for loop in task.rework:
                where = _task_path(stages_raw, task.name) + f".outcomes.{loop.outcome}.goto"
                if loop.goto not in order:
                    c.add(where, f"unknown stage {loop.goto!r}")
                elif order[loop.goto] > stage.order:
                    c.add(where, f"stage {loop.goto!r} comes after {stage.name!r}: go back only")


def _task_path(stages_raw: list, name: str) -> str:
    for si, stage in enumerate(stages_raw):
        tasks = stage.get("tasks") if isinstance(stage, dict) else None
        for ti, task in enumerate(tasks if isinstance(tasks, list) else []):
            if isinstance(task, dict) and task.get("task_name") == name:
                return f"stages[{si}].tasks[{ti}]"
    return name


def _check_parents(
    c: _Collector, tasks: list[TaskSpec], spath: str, all_names: dict[str, str]
) -> None:
    """Parents must be tasks of the same stage, and the parent graph must have no cycle."""
    in_stage = {t.name: i for i, t in enumerate(tasks)}
    for i, task in enumerate(tasks):
        for parent in task.parents:
            if parent == task.name:
                c.add(f"{spath}.tasks[{i}].parent_task", f"task {task.name!r} is its own parent")
            elif parent not in in_stage:
                where = " (it is in another stage)" if parent in all_names else ""
                c.add(f"{spath}.tasks[{i}].parent_task", f"unknown task {parent!r}{where}")
    # Kahn's algorithm: whatever is left unsorted sits on a cycle.
    remaining = {t.name: {p for p in t.parents if p in in_stage and p != t.name} for t in tasks}
    while True:
        free = [n for n, ps in remaining.items() if not ps]
        if not free:
            break
        for n in free:
            del remaining[n]
        for ps in remaining.values():
            ps.difference_update(free)
    if remaining:
        names = sorted(remaining)
        first = in_stage[names[0]]
        c.add(f"{spath}.tasks[{first}].parent_task", f"cycle between tasks {', '.join(names)}")
