"""The definition language: parse and validate JSON into frozen dataclasses.

The native format is a superset of the seed workflow manager's template: any such template
(``workflow_name``, ``component_name``, ``stages[].tasks[]`` with ``parent_task``, ``task_queue``,
``task_type``, ``business_status``, ``assigned_to``) parses unchanged. Validation never raises on
any JSON value: it returns every problem it finds, each with the JSON path where it is.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.utils.dateparse import parse_duration

TASK_TYPES = ("SERVICE", "HUMAN")
FORM_FIELD_TYPES = ("string", "text", "integer", "decimal", "boolean", "date", "choice")
CONDITION_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "exists", "truthy")
KEY_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_ .:-]{0,99}$")
VAR_PATH_RE = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")

# Fields of a task this language understands; any other field is kept and passed through
# in the StartTask payload, as the seed's workflow manager does.
KNOWN_TASK_FIELDS = {
    "task_name",
    "parent_task",
    "task_queue",
    "task_type",
    "business_status",
    "assigned_to",
    "assignee",
    "handler",
    "retry",
    "timeout",
    "condition",
    "outcomes",
    "form",
    "escalation",
    "compensate",
    "on_error",
    "label",
    "description",
    "due",
    "not_by",
    "not_by_var",
    "show",
    "external_decision",
}
VISIBILITIES = ("private", "participants", "role")
BUSINESS_KEY_UNIQUE = ("active", "ever")
INITIATOR = "initiator"


class SpecValidationError(Exception):
    """Raised by ``parse_or_raise`` with every problem found."""

    def __init__(self, errors: list[SpecError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


@dataclass(frozen=True)
class SpecError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 1
    backoff: dt.timedelta = dt.timedelta(seconds=5)
    backoff_factor: float = 2.0
    max_backoff: dt.timedelta = dt.timedelta(hours=1)

    def delay_after(self, attempt: int) -> dt.timedelta:
        """Back-off before attempt ``attempt + 1`` (attempt counts from 1)."""
        seconds = self.backoff.total_seconds() * (self.backoff_factor ** max(attempt - 1, 0))
        return min(dt.timedelta(seconds=seconds), self.max_backoff)


@dataclass(frozen=True)
class Escalation:
    after: dt.timedelta
    to_role: str | None = None
    notify: bool = True


@dataclass(frozen=True)
class FormField:
    name: str
    type: str = "string"
    label: str = ""
    required: bool = False
    choices: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class TaskSpec:
    name: str
    type: str
    stage: str
    parents: tuple[str, ...] = ()
    task_queue: str | None = None
    business_status: str | None = None
    assigned_to: str | None = None
    assignee: str | None = None  # variable path resolving to a username
    handler: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: dt.timedelta | None = None
    condition: Any = None
    outcomes: tuple[str, ...] = ()
    form: tuple[FormField, ...] = ()
    escalation: Escalation | None = None
    due: dt.timedelta | None = None
    compensate: str | None = None
    notify_on_error: bool = True
    label: str = ""
    description: str = ""
    # Separation of duties (HUMAN): who may not decide this task. ``not_by``: "initiator" (whoever
    # started the process) or names of other human tasks (whoever decided them: four eyes);
    # ``not_by_var``: variable paths holding the username of the person the decision is about.
    not_by: tuple[str, ...] = ()
    not_by_var: tuple[str, ...] = ()
    show: tuple[str, ...] | None = None  # variable paths its deciders see; None: every variable
    external_decision: bool = False  # may be decided by a TaskCompleted seed event too
    extra: dict = field(default_factory=dict)

    @property
    def is_external(self) -> bool:
        """A SERVICE task with no handler is worked by an outside system polling its queue."""
        return self.type == "SERVICE" and not self.handler


@dataclass(frozen=True)
class StageSpec:
    name: str
    order: float
    tasks: tuple[TaskSpec, ...] = ()


@dataclass(frozen=True)
class ProcessSpec:
    key: str
    name: str
    component_name: str | None
    stages: tuple[StageSpec, ...]
    description: str = ""
    on_error_notify: bool = True
    visibility: str = "participants"  # who reads human tasks held by someone else (VISIBILITIES)
    business_key_unique: str = "active"  # "ever": a business key runs once, whatever its state
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    def task(self, name: str) -> TaskSpec:
        for stage in self.stages:
            for task in stage.tasks:
                if task.name == name:
                    return task
        raise KeyError(name)

    def stage(self, name: str) -> StageSpec:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    @property
    def tasks(self) -> list[TaskSpec]:
        return [t for s in self.stages for t in s.tasks]

    def stage_index(self, name: str) -> int:
        return [s.name for s in self.stages].index(name)


# --- helpers --------------------------------------------------------------------------------------


def slugify_key(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:100] or "process"


def parse_iso_duration(value: Any) -> dt.timedelta | None:
    """Parse an ISO-8601 duration ("PT5M", "P2D") or a number of seconds; None if invalid."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0 or value > 10**9:
            return None
        return dt.timedelta(seconds=value)
    if isinstance(value, str) and value.upper().startswith("P"):
        try:
            parsed = parse_duration(value.upper())
        except (ValueError, OverflowError):
            return None
        if parsed is None or parsed < dt.timedelta(0):
            return None
        return parsed
    return None


class _Collector:
    def __init__(self) -> None:
        self.errors: list[SpecError] = []

    def add(self, path: str, message: str) -> None:
        self.errors.append(SpecError(path, message))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _opt_str(c: _Collector, obj: dict, key: str, path: str, *, pattern=None) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        c.add(f"{path}.{key}", "must be a non-empty string")
        return None
    if pattern is not None and not pattern.match(value):
        c.add(f"{path}.{key}", f"invalid value {value!r}")
        return None
    return value


def validate_condition(cond: Any, path: str, c: _Collector) -> None:
    """A condition is data, never code: {"var", "op", "value"} leaves under all/any/not."""
    if not isinstance(cond, dict) or not cond:
        c.add(path, "must be an object such as {'var': 'x', 'op': 'eq', 'value': 1}")
        return
    if len(cond) == 1 and next(iter(cond)) in ("all", "any"):
        key = next(iter(cond))
        items = cond[key]
        if not isinstance(items, list) or not items:
            c.add(f"{path}.{key}", "must be a non-empty list of conditions")
            return
        for i, item in enumerate(items):
            validate_condition(item, f"{path}.{key}[{i}]", c)
        return
    if len(cond) == 1 and "not" in cond:
        validate_condition(cond["not"], f"{path}.not", c)
        return
    unknown = set(cond) - {"var", "op", "value"}
    if unknown:
        c.add(path, f"unknown condition keys: {', '.join(sorted(map(str, unknown)))}")
    var = cond.get("var")
    if not isinstance(var, str) or not VAR_PATH_RE.match(var):
        c.add(f"{path}.var", "must be a variable path like 'approve_bonus.decision'")
    op = cond.get("op", "eq")
    if op not in CONDITION_OPS:
        c.add(f"{path}.op", f"unknown operator {op!r}; one of {', '.join(CONDITION_OPS)}")
        return
    if op in ("in", "not_in") and not isinstance(cond.get("value"), list):
        c.add(f"{path}.value", f"operator {op!r} needs a list")
    if op not in ("exists", "truthy") and "value" not in cond:
        c.add(f"{path}.value", "is required for this operator")


def _parse_retry(c: _Collector, value: Any, path: str) -> RetryPolicy:
    if value is None:
        return RetryPolicy()
    if _is_number(value) and int(value) == value:
        value = {"max_attempts": int(value)}
    if not isinstance(value, dict):
        c.add(path, "must be an object {max_attempts, backoff, backoff_factor}")
        return RetryPolicy()
    unknown = set(value) - {"max_attempts", "backoff", "backoff_factor", "max_backoff"}
    if unknown:
        c.add(path, f"unknown keys: {', '.join(sorted(map(str, unknown)))}")
    max_attempts = value.get("max_attempts", 3)
    if not (isinstance(max_attempts, int) and not isinstance(max_attempts, bool)) or not (
        1 <= max_attempts <= 100
    ):
        c.add(f"{path}.max_attempts", "must be an integer from 1 to 100")
        max_attempts = 1
    backoff = parse_iso_duration(value.get("backoff", "PT5S"))
    if backoff is None:
        c.add(f"{path}.backoff", "bad duration: use ISO-8601 like 'PT30S' or seconds")
        backoff = dt.timedelta(seconds=5)
    factor = value.get("backoff_factor", 2.0)
    if not _is_number(factor) or not (1 <= factor <= 10):
        c.add(f"{path}.backoff_factor", "must be a number from 1 to 10")
        factor = 2.0
    max_backoff = parse_iso_duration(value.get("max_backoff", "PT1H"))
    if max_backoff is None:
        c.add(f"{path}.max_backoff", "bad duration: use ISO-8601 like 'PT1H' or seconds")
        max_backoff = dt.timedelta(hours=1)
    return RetryPolicy(max_attempts, backoff, float(factor), max_backoff)


def _parse_form(c: _Collector, value: Any, path: str) -> tuple[FormField, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        c.add(path, "must be a list of fields")
        return ()
    fields: list[FormField] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        fpath = f"{path}[{i}]"
        if not isinstance(item, dict):
            c.add(fpath, "must be an object {name, type, label, required}")
            continue
        name = item.get("name")
        if not isinstance(name, str) or not VAR_PATH_RE.match(name) or "." in name:
            c.add(f"{fpath}.name", "must be an identifier")
            continue
        if name in seen or name in ("decision", "comment"):
            c.add(f"{fpath}.name", f"duplicate or reserved field name {name!r}")
            continue
        seen.add(name)
        ftype = item.get("type", "string")
        if ftype not in FORM_FIELD_TYPES:
            c.add(f"{fpath}.type", f"unknown type {ftype!r}; one of {', '.join(FORM_FIELD_TYPES)}")
            continue
        choices = item.get("choices", [])
        if ftype == "choice" and (
            not isinstance(choices, list)
            or not choices
            or not all(isinstance(x, str) for x in choices)
        ):
            c.add(f"{fpath}.choices", "a choice field needs a non-empty list of strings")
            continue
        bounds = {}
        for bound in ("min", "max"):
            if bound in item:
                if not _is_number(item[bound]):
                    c.add(f"{fpath}.{bound}", "must be a number")
                else:
                    bounds[bound] = float(item[bound])
        label = item.get("label", "")
        required = item.get("required", False)
        if not isinstance(required, bool):
            c.add(f"{fpath}.required", "must be true or false")
            required = False
        fields.append(
            FormField(
                name=name,
                type=ftype,
                label=label if isinstance(label, str) else "",
                required=required,
                choices=tuple(choices) if ftype == "choice" else (),
                **bounds,
            )
        )
    return tuple(fields)


def _parse_escalation(c: _Collector, value: Any, path: str) -> Escalation | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        c.add(path, "must be an object {after, to, notify}")
        return None
    after = parse_iso_duration(value.get("after"))
    if after is None or after.total_seconds() <= 0:
        c.add(f"{path}.after", "bad duration: use ISO-8601 like 'P2D' or 'PT4H'")
        return None
    to_role = value.get("to")
    if to_role is not None and (not isinstance(to_role, str) or not NAME_RE.match(to_role)):
        c.add(f"{path}.to", "must be a role name")
        to_role = None
    notify = value.get("notify", True)
    if not isinstance(notify, bool):
        c.add(f"{path}.notify", "must be true or false")
        notify = True
    return Escalation(after=after, to_role=to_role, notify=notify)


def _known_handlers_default() -> set[str] | None:
    from processes import steps

    return set(steps.registry.names())


# --- the parser -----------------------------------------------------------------------------------


def parse(
    data: Any, *, known_handlers: Iterable[str] | None = None
) -> tuple[ProcessSpec | None, list[SpecError]]:
    """Return (spec, []) for a valid definition, or (None, errors) listing every problem."""
    c = _Collector()
    handlers = set(known_handlers) if known_handlers is not None else _known_handlers_default()
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
    if "component_name" in data and component is None and data["component_name"] is not None:
        pass  # already reported
    key = data.get("key")
    if key is None:
        key = slugify_key(component or name or "process")
    elif not isinstance(key, str) or not KEY_RE.match(key):
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

    stages_raw = data.get("stages")
    if not isinstance(stages_raw, list) or not stages_raw:
        c.add("stages", "is required: a non-empty list of stages")
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
        if not isinstance(sname, str) or not NAME_RE.match(sname):
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
        raw=data,
    )


def _parse_task(
    c: _Collector, raw: Any, path: str, stage: str, handlers: set[str] | None
) -> TaskSpec | None:
    if not isinstance(raw, dict):
        c.add(path, "must be an object {task_name, task_type, parent_task, ...}")
        return None
    name = raw.get("task_name")
    if not isinstance(name, str) or not VAR_PATH_RE.match(name) or "." in name:
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
            c.add(f"{path}.timeout", "bad duration: use ISO-8601 like 'PT30S' or seconds")
            timeout = None
    due = None
    if raw.get("due") is not None:
        due = parse_iso_duration(raw["due"])
        if due is None or due.total_seconds() <= 0:
            c.add(f"{path}.due", "bad duration: use ISO-8601 like 'P2D' or seconds")
            due = None
    condition = raw.get("condition")
    if condition is not None:
        validate_condition(condition, f"{path}.condition", c)
    outcomes_raw = raw.get("outcomes", [])
    outcomes: tuple[str, ...] = ()
    if outcomes_raw:
        if ttype != "HUMAN":
            c.add(f"{path}.outcomes", "only a HUMAN task has outcomes")
        elif (
            not isinstance(outcomes_raw, list)
            or not all(isinstance(o, str) and VAR_PATH_RE.match(o) for o in outcomes_raw)
            or len(set(outcomes_raw)) != len(outcomes_raw)
        ):
            c.add(f"{path}.outcomes", "must be a list of distinct identifiers like 'approve'")
        else:
            outcomes = tuple(outcomes_raw)
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
        extra=extra,
    )


def _path_list(c: _Collector, value: Any, path: str, what: str) -> tuple[str, ...]:
    """A variable path or a list of them."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(
        isinstance(v, str) and VAR_PATH_RE.fullmatch(v) for v in value
    ):
        c.add(path, f"must be a list of {what} like 'salary_base.manager'")
        return ()
    return tuple(dict.fromkeys(value))


def _parse_human_rules(c: _Collector, raw: dict, path: str, ttype: str):
    """``not_by``, ``not_by_var``, ``show`` and ``external_decision``: HUMAN tasks only."""
    present = [k for k in ("not_by", "not_by_var", "show", "external_decision") if k in raw]
    if ttype != "HUMAN":
        for key in present:
            c.add(f"{path}.{key}", "only a HUMAN task has this")
        return (), (), None, False
    not_by: tuple[str, ...] = ()
    if "not_by" in raw:
        value = raw["not_by"]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(
            isinstance(v, str) and VAR_PATH_RE.fullmatch(v) and "." not in v for v in value
        ):
            c.add(f"{path}.not_by", "must be a list of 'initiator' or human task names")
        else:
            not_by = tuple(dict.fromkeys(value))
    not_by_var = _path_list(c, raw.get("not_by_var", []), f"{path}.not_by_var", "variable paths")
    show = None
    if "show" in raw:
        show = _path_list(c, raw["show"], f"{path}.show", "variable paths")
    external = raw.get("external_decision", False)
    if not isinstance(external, bool):
        c.add(f"{path}.external_decision", "must be true or false")
        external = False
    return not_by, not_by_var, show, external


def _check_separation_of_duties(
    c: _Collector, stages: list[StageSpec], task_paths: dict[str, str]
) -> None:
    """``not_by`` names "initiator" or another HUMAN task of this definition."""
    tasks = {t.name: t for s in stages for t in s.tasks}
    for task in tasks.values():
        for i, name in enumerate(task.not_by):
            where = f"{task_paths.get(task.name, '')}.not_by[{i}]"
            if name == INITIATOR:
                continue
            other = tasks.get(name)
            if other is None:
                c.add(where, f"unknown task {name!r}: use 'initiator' or a human task's name")
            elif other.name == task.name:
                c.add(where, "a task can't exclude its own deciders")
            elif other.type != "HUMAN":
                c.add(where, f"task {name!r} is not a human task: nobody decides it")


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


# --- conditions -----------------------------------------------------------------------------------

MISSING = object()


def lookup(variables: dict, path: str) -> Any:
    value: Any = variables
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return MISSING
    return value


def evaluate_condition(cond: Any, variables: dict) -> bool:
    """Evaluate a validated condition against the process variables; a missing variable is false."""
    if cond is None:
        return True
    if "all" in cond and len(cond) == 1:
        return all(evaluate_condition(x, variables) for x in cond["all"])
    if "any" in cond and len(cond) == 1:
        return any(evaluate_condition(x, variables) for x in cond["any"])
    if "not" in cond and len(cond) == 1:
        return not evaluate_condition(cond["not"], variables)
    value = lookup(variables, cond["var"])
    op = cond.get("op", "eq")
    if op == "exists":
        return value is not MISSING
    if value is MISSING:
        return False
    if op == "truthy":
        return bool(value)
    expected = cond.get("value")
    try:
        if op == "eq":
            return value == expected
        if op == "ne":
            return value != expected
        if op == "in":
            return value in expected
        if op == "not_in":
            return value not in expected
        if op == "gt":
            return value > expected
        if op == "gte":
            return value >= expected
        if op == "lt":
            return value < expected
        if op == "lte":
            return value <= expected
    except TypeError:
        return False
    return False


def describe_condition(cond: Any) -> str:
    """A short human label for diagrams and admin pages."""
    if cond is None:
        return ""
    if "all" in cond and len(cond) == 1:
        return " and ".join(describe_condition(x) for x in cond["all"])
    if "any" in cond and len(cond) == 1:
        return " or ".join(describe_condition(x) for x in cond["any"])
    if "not" in cond and len(cond) == 1:
        return f"not ({describe_condition(cond['not'])})"
    symbols = {"eq": "=", "ne": "≠", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤"}
    op = cond.get("op", "eq")
    if op in ("exists", "truthy"):
        return f"{cond['var']} {op}"
    return f"{cond['var']} {symbols.get(op, op)} {cond.get('value')!r}"


def apply_variable_changes(variables: dict, set_paths: dict, unset_paths) -> tuple[dict, dict]:
    """A copy of ``variables`` with ``set_paths`` set and ``unset_paths`` removed, and the diff
    ``{path: {"before": ..., "after": ...}}`` of what really changed (a missing side: absent).

    Returns (variables, None) when a path goes through a value that is not an object.
    """
    import copy

    result = copy.deepcopy(variables or {})
    diff: dict = {}
    for path, value in [
        *((p, v) for p, v in set_paths.items()),
        *((p, MISSING) for p in unset_paths),
    ]:
        parts = path.split(".")
        target = result
        for part in parts[:-1]:
            nxt = target.get(part, MISSING)
            if nxt is MISSING:
                if value is MISSING:
                    target = None
                    break
                nxt = target[part] = {}
            if not isinstance(nxt, dict):
                return result, None
            target = nxt
        if target is None:
            continue
        before = target.get(parts[-1], MISSING)
        if value is MISSING:
            if before is MISSING:
                continue
            del target[parts[-1]]
        else:
            if before == value and before is not MISSING:
                continue
            target[parts[-1]] = value
        change = {}
        if before is not MISSING:
            change["before"] = before
        if value is not MISSING:
            change["after"] = value
        diff[path] = change
    return result, diff
