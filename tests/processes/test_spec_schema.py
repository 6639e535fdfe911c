"""The definition language's JSON Schema agrees with the validator (``processes.spec.parse``).

What the validator accepts the schema accepts: the shipped definitions, the seed-002 template,
the tutorial's definition, and definitions hypothesis generates with every kind of task and
field (and the same with one field replaced by any JSON value: if the validator still takes it,
so must the schema). The shape errors the validator refuses, the schema refuses too.
"""

import ast
import copy
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from processes.spec import ANY_HANDLER, CONDITION_OPS, FORM_FIELD_TYPES, SUMMARY_FORMATS, parse
from processes.spec.form_rules import MAX_FILE_BYTES
from processes.spec.schema import definition_schema
from processes.spec.types import DATA_FIELD_TYPES, VALUE_TYPES
from tests.conftest import DEFINITIONS, ROOT

SCHEMA = definition_schema()
VALIDATOR = Draft202012Validator(SCHEMA)


def validator_accepts(data) -> bool:
    spec, errors = parse(data, known_handlers=ANY_HANDLER)
    return not errors


def schema_errors(data) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(data)
    ]


def test_the_schema_is_a_valid_json_schema():
    Draft202012Validator.check_schema(SCHEMA)


SHIPPED = sorted(DEFINITIONS.glob("*.json")) + sorted((ROOT / "examples").glob("*/*.json"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_definition_is_valid_for_both(path):
    data = json.loads(path.read_text())
    assert validator_accepts(data)
    assert schema_errors(data) == []


def test_the_seed_002_template_verbatim_is_valid_for_both():
    """pizza.json is the seed's "Deliver Pizza" template as the seed prints it."""
    template = json.loads((DEFINITIONS / "pizza.json").read_text())
    assert set(template) == {"workflow_name", "component_name", "stages"}
    assert validator_accepts(template) and schema_errors(template) == []


# --- generated definitions ------------------------------------------------------------------------

ident = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
var_path = st.lists(ident, min_size=1, max_size=3).map(".".join)
durations = st.one_of(
    st.integers(1, 86400),
    st.sampled_from(["PT30S", "P2D", "pt5m", "P1DT12H", "PT1.5H", "P3650D"]),
)
text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
nonblank = text.filter(lambda s: s.strip() and len(s) <= 200)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), text)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ident, inner, max_size=3),
    max_leaves=6,
)


def conditions():
    leaf = st.one_of(
        st.builds(
            lambda v, op, value: {"var": v, "op": op, "value": value},
            var_path,
            st.sampled_from([o for o in CONDITION_OPS if o not in ("in", "not_in")]),
            json_scalars,
        ),
        st.builds(
            lambda v, op, value: {"var": v, "op": op, "value": value},
            var_path,
            st.sampled_from(["in", "not_in"]),
            st.lists(json_scalars, max_size=3),
        ),
        st.builds(
            lambda v, op: {"var": v, "op": op}, var_path, st.sampled_from(["exists", "truthy"])
        ),
        st.builds(lambda v, value: {"var": v, "value": value}, var_path, json_scalars),
    )
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.lists(inner, min_size=1, max_size=3).map(lambda c: {"all": c}),
            st.lists(inner, min_size=1, max_size=3).map(lambda c: {"any": c}),
            inner.map(lambda c: {"not": c}),
        ),
        max_leaves=5,
    )


def optional(draw, fields: dict, name: str, strategy) -> None:
    if draw(st.booleans()):
        fields[name] = draw(strategy)


def any_case(word):
    return st.sampled_from([word, word.lower(), word.title()])


PATTERNS = ["[A-Z]{3}", r"\d{4}-(0[1-9]|1[0-2])", "E[0-9]+", "[a-z ]*", "(yes|no)"]


@st.composite
def typed_field(draw, name: str | None, types=DATA_FIELD_TYPES) -> dict:
    """A field of a form, an ``input`` or a ``result`` (``name``), or a list's ``items`` (None):
    every key the parser knows, with values it takes."""
    ftype = draw(st.sampled_from(types))
    field = {} if name is None else {"name": name}
    if ftype != "string" or draw(st.booleans()):
        field["type"] = ftype
    optional(draw, field, "required", st.booleans())
    optional(draw, field, "label", text)
    if ftype in ("integer", "decimal", "list"):
        low = draw(st.integers(0 if ftype == "list" else -1000, 1000))
        if draw(st.booleans()):
            field["min"] = low
        if draw(st.booleans()):
            field["max"] = low + draw(st.one_of(st.integers(0, 1000), st.floats(0, 10)))
    if ftype in ("string", "text"):
        optional(draw, field, "pattern", st.one_of(st.none(), st.sampled_from(PATTERNS)))
    if ftype == "decimal":
        optional(draw, field, "places", st.one_of(st.none(), st.integers(0, 10)))
    if ftype == "choice":
        field["choices"] = draw(st.lists(ident, min_size=1, max_size=3))
    if ftype == "list":
        field["items"] = draw(typed_field(None, VALUE_TYPES))
    if ftype == "file":
        optional(draw, field, "accept", st.lists(st.sampled_from(ACCEPTS), max_size=3))
        optional(draw, field, "max_size", st.integers(1, MAX_FILE_BYTES))
    return field


ACCEPTS = ["application/pdf", "image/png", "image/*", "text/plain", "application/*"]


@st.composite
def with_rules(draw, fields: list) -> list:
    """Some fields of a form shown or required when another field, or the decision, has a value."""
    names = ["decision", *(f["name"] for f in fields)]
    for field in fields:
        for key in ("show_if", "required_if"):
            others = [n for n in names if n != field["name"]]
            if draw(st.booleans()):
                field[key] = {"field": draw(st.sampled_from(others)), "equals": draw(json_scalars)}
    return fields


def without_clashes(names: list[str]) -> list[str]:
    """Names where none also holds fields (``a`` and ``a.b`` can't both be declared)."""
    kept: list[str] = []
    for name in names:
        if not any(name.startswith(k + ".") or k.startswith(name + ".") for k in kept):
            kept.append(name)
    return kept


def typed_fields(names=var_path):
    """A declaration (``input``, ``result``): fields with distinct, dotted names."""
    return (
        st.lists(names, max_size=4, unique=True)
        .map(without_clashes)
        .flatmap(lambda ns: st.tuples(*(typed_field(n) for n in ns)).map(list))
    )


# An input field is not named like a task (t0, t1, ...: its result goes there) or "rework".
input_names = var_path.filter(
    lambda n: not re.fullmatch(r"t\d+", n.split(".")[0]) and n.split(".")[0] != "rework"
)


@st.composite
def common_fields(draw) -> dict:
    fields: dict = {}
    optional(draw, fields, "label", text)
    optional(draw, fields, "description", text)
    optional(draw, fields, "business_status", st.one_of(st.none(), nonblank))
    optional(draw, fields, "condition", st.one_of(st.none(), conditions()))
    optional(
        draw, fields, "on_error", st.fixed_dictionaries({}, optional={"notify": st.booleans()})
    )
    optional(draw, fields, "task_queue", nonblank)
    optional(draw, fields, "x_extra_field", json_values)  # kept and passed on, as the seed does
    return fields


@st.composite
def service_task(draw, name) -> dict:
    task = {"task_name": name, **draw(common_fields())}
    if draw(st.booleans()):
        task["task_type"] = draw(any_case("SERVICE"))
    external = draw(st.booleans())
    if not external:
        task["handler"] = draw(st.sampled_from(["flowdesk.noop", "erp.post", "a.b.c"]))
        optional(draw, task, "inline", st.booleans())
        optional(draw, task, "compensate", st.just("flowdesk.noop"))
    optional(
        draw,
        task,
        "retry",
        st.one_of(
            st.integers(1, 100),
            st.fixed_dictionaries(
                {},
                optional={
                    "max_attempts": st.integers(1, 100),
                    "backoff": durations,
                    "backoff_factor": st.floats(1, 10),
                    "max_backoff": durations,
                },
            ),
        ),
    )
    optional(draw, task, "timeout", durations)
    if external and "timeout" in task:
        optional(draw, task, "on_timeout", st.sampled_from(["incident", "fail", "skip"]))
    optional(draw, task, "result", st.one_of(st.none(), typed_fields()))
    return task


@st.composite
def human_task(draw, name, human_names: list[str], stages_so_far: list[str]) -> dict:
    task = {
        "task_name": name,
        "task_type": draw(any_case("HUMAN")),
        "assigned_to": draw(st.from_regex(r"[a-z][a-z ._:-]{0,20}", fullmatch=True)),
        **draw(common_fields()),
    }
    optional(draw, task, "assignee", var_path)
    outcome_names = st.lists(ident, min_size=1, max_size=3, unique=True)
    options = st.one_of(st.none(), st.just({}))
    if stages_so_far:
        options = options | st.fixed_dictionaries(
            {"goto": st.sampled_from(stages_so_far)}, optional={"max_rounds": st.integers(2, 100)}
        )
    optional(
        draw,
        task,
        "outcomes",
        st.one_of(outcome_names, st.dictionaries(ident, options, min_size=1, max_size=3)),
    )
    fields = st.lists(
        ident.filter(lambda n: n not in ("decision", "comment")), max_size=3, unique=True
    ).flatmap(lambda ns: st.tuples(*(typed_field(n, FORM_FIELD_TYPES) for n in ns)).map(list))
    fields = fields.flatmap(with_rules)
    optional(draw, task, "form", fields)
    escalate = draw(st.booleans())
    if escalate:
        task["escalation"] = draw(
            st.fixed_dictionaries(
                {"after": durations},
                optional={
                    "to": st.sampled_from(["directors", "ops team"]),
                    "notify": st.booleans(),
                },
            )
        )
    optional(draw, task, "due", durations)
    if "due" in task and not escalate:
        optional(draw, task, "on_timeout", st.sampled_from(["incident", "fail", "skip"]))
    optional(
        draw, task, "not_by", st.lists(st.sampled_from(["initiator", *human_names]), max_size=2)
    )
    optional(draw, task, "not_by_var", st.one_of(var_path, st.lists(var_path, max_size=2)))
    optional(draw, task, "show", st.lists(var_path, max_size=3))
    optional(draw, task, "external_decision", st.booleans())
    summary_item = st.one_of(
        st.builds(
            lambda label, var, fmt: {"label": label, "var": var, "format": fmt},
            nonblank,
            var_path,
            st.sampled_from(SUMMARY_FORMATS),
        ),
        st.builds(
            lambda label, var: {"label": label, "var": var, "format": "money", "currency": "EUR"},
            nonblank,
            var_path,
        ),
        st.builds(
            lambda label, var, cur: {
                "label": label,
                "var": var,
                "format": "money",
                "currency_var": cur,
            },
            nonblank,
            var_path,
            var_path,
        ),
    )
    optional(draw, task, "summary", st.lists(summary_item, max_size=3))
    optional(draw, task, "explain", st.lists(summary_item, max_size=3))
    return task


@st.composite
def process_task(draw, name) -> dict:
    call = {"definition": draw(st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,20}", fullmatch=True))}
    optional(draw, call, "version", st.one_of(st.none(), st.integers(1, 50)))
    optional(draw, call, "for_each", var_path)
    optional(draw, call, "business_key", st.one_of(var_path, st.just("SAL-{period}-{item}")))
    optional(draw, call, "input", st.dictionaries(ident, var_path, max_size=3))
    optional(draw, call, "output", st.dictionaries(ident, var_path, max_size=3))
    return {
        "task_name": name,
        "task_type": draw(any_case("PROCESS")),
        "process": call,
        **draw(common_fields()),
    }


@st.composite
def timer_task(draw, name) -> dict:
    task = {"task_name": name, "task_type": draw(any_case("TIMER")), **draw(common_fields())}
    if draw(st.booleans()):
        task["wait"] = draw(durations)
    else:
        task["until"] = draw(var_path)
    return task


@st.composite
def message_task(draw, name) -> dict:
    message = {"name": draw(st.sampled_from(["payment_received", "Paid 2", "a.b:c-d"]))}
    message["key"] = draw(var_path)
    task = {
        "task_name": name,
        "task_type": draw(any_case("MESSAGE")),
        "message": message,
        **draw(common_fields()),
    }
    optional(draw, task, "result", st.one_of(st.none(), typed_fields()))
    return task


@st.composite
def definitions(draw) -> dict:
    stage_count = draw(st.integers(1, 3))
    names = iter(f"t{i}" for i in range(100))
    stages, stage_names, human_names = [], [], []
    for s in range(stage_count):
        stage_name = draw(st.sampled_from(["START", "Check it", "pay.out", "A:1", "rev-2"])) + str(
            s
        )
        tasks = []
        for _ in range(draw(st.integers(1 if s == 0 else 0, 4))):
            kind = draw(st.sampled_from(["service", "human", "process", "timer", "message"]))
            name = next(names)
            if kind == "service":
                task = draw(service_task(name))
            elif kind == "human":
                task = draw(human_task(name, human_names, [*stage_names, stage_name]))
                human_names.append(name)
            elif kind == "timer":
                task = draw(timer_task(name))
            elif kind == "message":
                task = draw(message_task(name))
            else:
                task = draw(process_task(name))
            earlier = [t["task_name"] for t in tasks]
            if earlier and draw(st.booleans()):
                parents = draw(st.lists(st.sampled_from(earlier), min_size=1, unique=True))
                task["parent_task"] = (
                    parents[0] if len(parents) == 1 and draw(st.booleans()) else parents
                )
            tasks.append(task)
        stage = {
            "stage_name": stage_name,
            "stage_order": draw(st.sampled_from([s, s + 0.5, float(s)])),
        }
        if tasks or draw(st.booleans()):
            stage["tasks"] = tasks
        stages.append(stage)
        stage_names.append(stage_name)
    data = {"stages": stages}
    if draw(st.booleans()):
        data["workflow_name"] = draw(nonblank)
    else:
        data["name"] = draw(nonblank)
    optional(draw, data, "key", st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,30}", fullmatch=True))
    optional(draw, data, "component_name", nonblank)
    optional(draw, data, "description", text)
    optional(draw, data, "visibility", st.sampled_from(["private", "participants", "role"]))
    optional(draw, data, "business_key_unique", st.sampled_from(["active", "ever"]))
    optional(draw, data, "on_failure", st.sampled_from(["incident", "compensate"]))
    optional(draw, data, "deadline", durations)
    optional(draw, data, "retention", st.sampled_from(["P7Y", "P90D", "p1y6m", " P2W ", None]))
    optional(draw, data, "on_error", st.fixed_dictionaries({"notify": st.booleans()}))
    optional(draw, data, "input", st.one_of(st.none(), typed_fields(input_names)))
    return data


FAST = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))


@FAST
@given(definitions())
def test_generated_definitions_are_valid_for_both(data):
    spec, errors = parse(data, known_handlers=ANY_HANDLER)
    assert errors == [], errors  # the generator makes valid definitions...
    assert schema_errors(data) == []  # ...and the schema takes every one of them


def fields_of(data) -> list[tuple[dict, str]]:
    """Every (object, field) of a definition that a mutation may replace."""
    found = [(data, name) for name in data if name != "stages"]
    typed = list(data.get("input") or [])
    for stage in data["stages"]:
        found += [(stage, name) for name in stage if name != "tasks"]
        for task in stage.get("tasks") or []:
            found += [(task, name) for name in task]
            for nested in ("retry", "escalation", "process", "message"):
                if isinstance(task.get(nested), dict):
                    found += [(task[nested], name) for name in task[nested]]
            for item in (task.get("summary") or []) + (task.get("explain") or []):
                found += [(item, name) for name in item]
            typed += (task.get("form") or []) + (task.get("result") or [])
    typed += [field["items"] for field in typed if "items" in field]
    found += [(field, name) for field in typed for name in field]
    return found


@FAST
@given(definitions(), st.data())
def test_whatever_the_validator_accepts_the_schema_accepts(data, draw):
    """One field replaced by any JSON value (or by a neighbour's name): when the validator still
    accepts the definition, the schema must too."""
    data = copy.deepcopy(data)
    target, name = draw.draw(st.sampled_from(fields_of(data)))
    target[name] = draw.draw(
        json_values | durations | var_path | st.sampled_from(list(SUMMARY_FORMATS))
    )
    if validator_accepts(data):
        assert schema_errors(data) == [], (target, name)


# --- shape errors: both refuse ----------------------------------------------------------------------


def base() -> dict:
    return {
        "workflow_name": "Shapes",
        "stages": [
            {
                "stage_name": "ONE",
                "stage_order": 1,
                "tasks": [
                    {"task_name": "work", "handler": "flowdesk.noop"},
                    {"task_name": "outside", "task_type": "SERVICE", "task_queue": "q"},
                    {
                        "task_name": "approve",
                        "task_type": "HUMAN",
                        "assigned_to": "managers",
                        "outcomes": ["approve", "reject"],
                    },
                    {
                        "task_name": "children",
                        "task_type": "PROCESS",
                        "process": {"definition": "c"},
                    },
                ],
            }
        ],
    }


def at(data, where: str):
    """The object ``where`` names: "" (the definition), "stage", or a task's name."""
    if where == "":
        return data
    stage = data["stages"][0]
    if where == "stage":
        return stage
    return next(t for t in stage["tasks"] if t["task_name"] == where)


class _Drop:
    """The field is left out (its repr names the test the same in every xdist worker)."""

    def __repr__(self) -> str:
        return "DROP"


DROP = _Drop()
SHAPE_ERRORS = [
    ("", "stages", DROP),
    ("", "stages", []),
    ("", "stages", "ONE"),
    ("", "workflow_name", DROP),
    ("", "workflow_name", 7),
    ("", "workflow_name", "  "),
    ("", "key", "Not A Key"),
    ("", "visibility", "public"),
    ("", "business_key_unique", "never"),
    ("", "on_failure", "retry"),
    ("", "schedule", "daily"),
    ("", "schedule", [{"cron": "0 6 25 * *"}]),
    ("", "schedule", [{"cron": "0 6 25 * *", "business_key": "SAL"}]),
    ("", "schedule", [{"cron": "0 6 25 * *", "business_key": "S-{date}", "catch_up": "x"}]),
    ("", "schedule", [{"cron": "0 6 25 * *", "business_key": "S-{date}", "every": 1}]),
    ("", "on_failure", None),
    ("", "deadline", "tomorrow"),
    ("", "retention", "PT5M"),
    ("", "description", None),
    ("", "on_error", "loud"),
    ("stage", "stage_name", DROP),
    ("stage", "stage_name", "a/b"),
    ("stage", "stage_order", DROP),
    ("stage", "stage_order", "1"),
    ("stage", "stage_order", True),
    ("stage", "tasks", "work"),
    ("work", "task_name", "a.b"),
    ("work", "task_name", 5),
    ("work", "task_type", "ROBOT"),
    ("work", "parent_task", 5),
    ("work", "parent_task", [""]),
    ("work", "handler", ""),
    ("work", "handler", 5),
    ("work", "retry", "often"),
    ("work", "retry", 0),
    ("work", "retry", {"max_attempts": 0}),
    ("work", "retry", {"tries": 3}),
    ("work", "retry", {"backoff": "soon"}),
    ("work", "retry", {"backoff_factor": 20}),
    ("work", "timeout", "5 minutes"),
    ("work", "timeout", -1),
    ("work", "timeout", {"seconds": 5}),
    ("work", "condition", {"var": "x", "op": "like", "value": 1}),
    ("work", "condition", {"op": "eq", "value": 1}),
    ("work", "condition", {"var": "x", "op": "in", "value": 1}),
    ("work", "condition", {"var": "x", "op": "eq"}),
    ("work", "condition", {"all": []}),
    ("work", "condition", {"var": "x", "value": 1, "code": "1+1"}),
    ("work", "condition", "x == 1"),
    ("work", "inline", "yes"),
    ("work", "label", 5),
    ("work", "description", None),
    ("work", "on_error", "quiet"),
    ("work", "on_error", {"notify": "no"}),
    ("work", "outcomes", ["approve"]),
    ("work", "form", [{"name": "x"}]),
    ("work", "escalation", {"after": "P1D"}),
    ("work", "not_by", ["initiator"]),
    ("work", "show", ["x"]),
    ("work", "process", {"definition": "c"}),
    ("work", "on_timeout", "skip"),
    ("work", "summary", [{"label": "A", "var": "x"}]),
    ("work", "explain", [{"label": "A", "var": "x"}]),
    ("outside", "inline", True),
    ("outside", "on_timeout", "later"),
    ("approve", "assigned_to", DROP),
    ("approve", "assigned_to", None),
    ("approve", "assigned_to", "bad/role"),
    ("approve", "handler", "flowdesk.noop"),
    ("approve", "outcomes", "approve"),
    ("approve", "outcomes", [1]),
    ("approve", "outcomes", ["approve", "approve"]),
    ("approve", "outcomes", {"rework": {"goto": "ONE", "max_rounds": 1}}),
    ("approve", "outcomes", {"rework": {"max_rounds": 3}}),
    ("approve", "outcomes", {"rework": {"goto": "ONE", "loop": True}}),
    ("approve", "form", "amount"),
    ("approve", "form", [{"name": "decision"}]),
    ("approve", "form", [{"name": "x", "type": "blob"}]),
    ("approve", "form", [{"name": "x", "type": "choice"}]),
    ("approve", "form", [{"name": "x", "min": "low"}]),
    ("approve", "form", [{"name": "x", "required": "yes"}]),
    ("approve", "escalation", {"after": "soon"}),
    ("approve", "escalation", {"to": "directors"}),
    ("approve", "escalation", {"after": "P1D", "to": "a/b"}),
    ("approve", "due", "Friday"),
    ("approve", "not_by", "the boss"),
    ("approve", "not_by_var", None),
    ("approve", "show", 5),
    ("approve", "external_decision", "yes"),
    ("approve", "summary", [{"label": "", "var": "x"}]),
    ("approve", "summary", [{"label": "A", "var": "x", "format": "fancy"}]),
    ("approve", "summary", [{"label": "A", "var": "x", "currency": "EUR"}]),
    ("approve", "summary", [{"label": "A", "var": "x", "format": "money", "currency": "euro"}]),
    ("approve", "summary", [{"label": "A", "var": "x", "colour": "red"}]),
    ("approve", "explain", "bonus.amount"),
    ("approve", "explain", [{"var": "bonus.rate"}]),
    ("approve", "explain", [{"label": "Rate", "var": "bonus rate"}]),
    ("approve", "explain", [{"label": "Rate", "var": "x", "format": "ratio"}]),
    ("children", "process", DROP),
    ("children", "process", {"definition": "Not A Key"}),
    ("children", "process", {"definition": "c", "version": 0}),
    ("children", "process", {"definition": "c", "input": {"a.b": "x"}}),
    ("children", "process", {"definition": "c", "input": None}),
    ("children", "process", {"definition": "c", "business_key": "K-{}"}),
    ("children", "process", {"definition": "c", "extra": 1}),
    ("children", "handler", "flowdesk.noop"),
    # typed data: a definition's input, a SERVICE task's result, a form's fields
    ("", "input", "employee_id"),
    ("", "input", {"name": "employee_id"}),
    ("", "input", ["employee_id"]),
    ("", "input", [{"type": "string"}]),
    ("", "input", [{"name": "a b"}]),
    ("", "input", [{"name": "a..b"}]),
    ("", "input", [{"name": "rework"}]),
    ("", "input", [{"name": "rework.round"}]),
    ("", "input", [{"name": "x", "colour": "red"}]),
    ("", "input", [{"name": "x", "type": "money"}]),
    ("", "input", [{"name": "x", "type": "LIST", "items": {}}]),
    ("", "input", [{"name": "x", "required": "yes"}]),
    ("", "input", [{"name": "x", "type": "integer", "min": "low"}]),
    ("", "input", [{"name": "x", "type": "integer", "max": True}]),
    ("", "input", [{"name": "x", "type": "choice"}]),
    ("", "input", [{"name": "x", "type": "choice", "choices": []}]),
    ("", "input", [{"name": "x", "type": "choice", "choices": [1, 2]}]),
    ("", "input", [{"name": "x", "pattern": ""}]),
    ("", "input", [{"name": "x", "pattern": 5}]),
    ("", "input", [{"name": "x", "pattern": "a" * 201}]),
    ("", "input", [{"name": "x", "type": "integer", "pattern": "[0-9]+"}]),
    ("", "input", [{"name": "x", "type": "list", "pattern": "E.*", "items": {}}]),
    ("", "input", [{"name": "x", "places": 2}]),
    ("", "input", [{"name": "x", "type": "integer", "places": 2}]),
    ("", "input", [{"name": "x", "type": "decimal", "places": 11}]),
    ("", "input", [{"name": "x", "type": "decimal", "places": -1}]),
    ("", "input", [{"name": "x", "type": "decimal", "places": 1.5}]),
    ("", "input", [{"name": "x", "type": "decimal", "places": "2"}]),
    ("", "input", [{"name": "x", "type": "decimal", "places": True}]),
    ("", "input", [{"name": "x", "type": "list"}]),
    ("", "input", [{"name": "x", "type": "list", "items": "string"}]),
    ("", "input", [{"name": "x", "type": "list", "items": {"name": "y"}}]),
    ("", "input", [{"name": "x", "type": "list", "items": {"type": "list", "items": {}}}]),
    ("", "input", [{"name": "x", "type": "list", "items": {"items": {}}}]),
    ("", "input", [{"name": "x", "type": "list", "items": {"type": "choice"}}]),
    ("", "input", [{"name": "x", "type": "list", "items": {"required": "no"}}]),
    ("", "input", [{"name": "x", "type": "list", "items": {"type": "date", "pattern": "x"}}]),
    ("", "input", [{"name": "x", "type": "list", "items": {"type": "decimal", "places": 20}}]),
    ("", "input", [{"name": "x", "items": {"type": "string"}}]),
    ("", "input", [{"name": f"f{i}"} for i in range(201)]),
    ("", "search", 5),
    ("", "search", "not a path"),
    ("", "search", ["employee_id", "a..b"]),
    ("", "search", [f"v{i}" for i in range(11)]),
    ("", "search", [["employee_id"]]),
    ("work", "result", "amount"),
    ("work", "result", {"amount": "decimal"}),
    ("work", "result", [{"name": "amount", "type": "float"}]),
    ("work", "result", [{"name": "amount", "type": "decimal", "places": 12}]),
    ("work", "result", [{"name": "amount", "precision": 2}]),
    ("outside", "result", [{"name": "eta", "type": "integer", "min": "0"}]),
    ("approve", "result", [{"name": "x"}]),
    ("approve", "result", []),
    ("children", "result", [{"name": "x"}]),
    ("approve", "form", [{"name": "a.b"}]),
    ("approve", "form", [{"name": "comment"}]),
    ("approve", "form", [{"name": "x", "colour": "red"}]),
    ("approve", "form", [{"name": "x", "type": "list", "items": {}}]),
    ("approve", "form", [{"name": "x", "items": {}}]),
    ("approve", "form", [{"name": "x", "type": "integer", "places": 2}]),
    ("approve", "form", [{"name": "x", "type": "boolean", "pattern": "yes"}]),
    ("approve", "form", [{"name": "x", "type": "file", "accept": ["application/zip"]}]),
    ("approve", "form", [{"name": "x", "type": "file", "accept": "application/pdf"}]),
    ("approve", "form", [{"name": "x", "type": "file", "max_size": 0}]),
    ("approve", "form", [{"name": "x", "type": "file", "max_size": 10**9}]),
    ("approve", "form", [{"name": "x", "max_size": 100}]),
    ("approve", "form", [{"name": "x", "show_if": {"field": "decision"}}]),
    ("approve", "form", [{"name": "x", "show_if": {"field": "a.b", "equals": 1}}]),
    ("approve", "form", [{"name": "x", "required_if": {"field": "decision", "equals": []}}]),
    ("", "input", [{"name": "x", "show_if": {"field": "y", "equals": 1}}]),
    ("", "input", [{"name": "x", "type": "file"}]),
    ("", "input", [{"name": "x", "type": "list", "items": {"type": "file"}}]),
    # translated labels: a language code → words
    ("work", "label", {}),
    ("work", "label", {"French": "Payer"}),
    ("work", "label", {"fr": 5}),
    ("approve", "form", [{"name": "x", "label": 5}]),
    ("approve", "form", [{"name": "x", "label": {"fr": None}}]),
    ("approve", "summary", [{"label": {"en": "A", "fr": " "}, "var": "x"}]),
    ("approve", "summary", [{"label": {}, "var": "x"}]),
    ("approve", "outcomes", {"approve": {"label": ""}}),
    ("approve", "outcomes", {"approve": {"label": {"fr": 1}}}),
]


TRANSLATED = [
    ("work", "label", {"en": "Pay", "fr": "Payer", "de": "Zahlen"}),
    ("work", "label", {"pt-BR": "Pagar"}),
    ("approve", "form", [{"name": "x", "label": {"en": "Reason", "fr": "Motif"}}]),
    ("approve", "summary", [{"label": {"en": "Amount", "fr": "Montant"}, "var": "x"}]),
    ("approve", "outcomes", {"approve": {"label": {"en": "Approve", "fr": "Valider"}}, "no": {}}),
]


@pytest.mark.parametrize(("where", "field", "value"), TRANSLATED)
def test_translated_labels_are_taken_by_both(where, field, value):
    data = base()
    at(data, where)[field] = value
    assert validator_accepts(data)
    assert schema_errors(data) == []


@pytest.mark.parametrize(
    ("where", "field", "value"),
    SHAPE_ERRORS,
    ids=[f"{w or 'top'}.{f}={v!r}" for w, f, v in SHAPE_ERRORS],
)
def test_shape_errors_are_refused_by_both(where, field, value):
    data = base()
    assert validator_accepts(data) and schema_errors(data) == []
    target = at(data, where)
    if value is DROP:
        del target[field]
    else:
        target[field] = value
    assert not validator_accepts(data), "the validator takes it: not a shape error"
    assert schema_errors(data), "the schema takes what the validator refuses"


SEMANTIC_ERRORS = [
    ("work", "parent_task", ["nobody"]),
    ("", "input", [{"name": "work"}]),  # a task's name: its result goes there
    ("", "input", [{"name": "x"}, {"name": "x"}]),
    ("", "input", [{"name": "bonus"}, {"name": "bonus.amount"}]),
    ("", "input", [{"name": "x", "type": "integer", "min": 5, "max": 1}]),
    ("", "input", [{"name": "x", "pattern": "("}]),
    ("", "input", [{"name": "x", "pattern": "(a+)+"}]),
    ("work", "result", [{"name": "a.b"}, {"name": "a"}]),
    ("approve", "form", [{"name": "x", "show_if": {"field": "nobody", "equals": 1}}]),
    ("approve", "form", [{"name": "x", "required_if": {"field": "x", "equals": 1}}]),
]


@pytest.mark.parametrize(
    ("where", "field", "value"),
    SEMANTIC_ERRORS,
    ids=[f"{w or 'top'}.{f}={v!r}" for w, f, v in SEMANTIC_ERRORS],
)
def test_only_the_semantic_checks_are_left_to_the_validator(where, field, value):
    """What needs the whole document, or more than a JSON Schema says (a regular expression that
    compiles, min against max), is the validator's alone (the schema accepts it)."""
    data = base()
    at(data, where)[field] = value
    assert not validator_accepts(data) and schema_errors(data) == []


def test_every_task_field_the_parser_knows_is_in_the_schema():
    """A field added to the language without its schema would pass through as an unknown one."""
    from processes.spec.schema_tasks import TASK_FIELDS
    from processes.spec.types import KNOWN_TASK_FIELDS

    assert {name for name, _, _ in TASK_FIELDS} >= KNOWN_TASK_FIELDS - {"task_name"}


def top_level_fields_the_parser_reads() -> set[str]:
    """The keys ``parse`` reads from the definition object, from its source: ``data.get("x")``,
    ``data["x"]`` and ``_opt_str(c, data, "x")``."""
    found = set()
    source = (ROOT / "processes" / "spec" / "parse.py").read_text()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Subscript) and getattr(node.value, "id", None) == "data":
            key = node.slice
        elif isinstance(node, ast.Call) and node.args:
            func, args = node.func, node.args
            if isinstance(func, ast.Attribute) and getattr(func.value, "id", None) == "data":
                key = args[0] if func.attr == "get" else None
            else:  # a helper handed the definition and a key
                at_data = [i for i, a in enumerate(args) if getattr(a, "id", None) == "data"]
                key = args[at_data[0] + 1] if at_data and at_data[0] + 1 < len(args) else None
        else:
            continue
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            found.add(key.value)
    return found


def test_every_top_level_field_the_parser_knows_is_in_the_schema():
    """A top-level field added to the language without its schema (as ``input`` once was) would
    be missing from editors and from the generated reference."""
    read = top_level_fields_the_parser_reads()
    assert {"workflow_name", "name", "stages", "component_name", "retention"} <= read  # the reader
    assert sorted(read - set(SCHEMA["properties"])) == []


def test_every_key_of_a_typed_field_is_in_the_schema():
    """``input``/``result`` fields take every key the parser knows (``typed_fields.FIELD_KEYS``), a
    form's fields all but ``items``; none takes another."""
    from processes.spec.typed_fields import FIELD_KEYS

    defs = SCHEMA["$defs"]
    from processes.spec.form_rules import FORM_ONLY_KEYS

    assert set(defs["field"]["properties"]) == FIELD_KEYS - set(FORM_ONLY_KEYS)
    assert set(defs["form_field"]["properties"]) == FIELD_KEYS - {"items"}
    assert defs["field"]["properties"]["type"]["enum"] == list(DATA_FIELD_TYPES)
    assert defs["form_field"]["properties"]["type"]["enum"] == list(FORM_FIELD_TYPES)


def test_a_timer_or_message_field_on_another_type_is_an_extra_field_for_both():
    """Definitions published before TIMER and MESSAGE existed may carry such fields: they stay
    extra fields, passed on in the StartTask payload."""
    data = base()
    data["stages"][0]["tasks"][1] |= {"message": "call the customer", "wait": True}
    spec, errors = parse(data, known_handlers=ANY_HANDLER)
    assert errors == [] and schema_errors(data) == []
    assert spec.task("outside").extra == {"message": "call the customer", "wait": True}


@pytest.mark.parametrize(
    "task, path",
    [
        ({"task_type": "TIMER"}, ""),
        ({"task_type": "TIMER", "wait": "PT1S", "until": "a.b"}, ""),
        ({"task_type": "TIMER", "wait": "soon"}, ".wait"),
        ({"task_type": "TIMER", "until": "not a path"}, ".until"),
        ({"task_type": "MESSAGE"}, ".message"),
        ({"task_type": "MESSAGE", "message": {"name": "paid"}}, ".message.key"),
        ({"task_type": "MESSAGE", "message": {"name": "paid", "key": "k", "x": 1}}, ".message"),
        ({"task_type": "TIMER", "wait": "PT1S", "handler": "flowdesk.noop"}, ".handler"),
    ],
)
def test_a_bad_timer_or_message_task_is_refused_by_both(task, path):
    data = base()
    data["stages"][0]["tasks"].append({"task_name": "waits", **task})
    spec, errors = parse(data, known_handlers=ANY_HANDLER)
    where = f"stages[0].tasks[{len(data['stages'][0]['tasks']) - 1}]{path}"
    assert where in [e.path for e in errors], errors
    assert schema_errors(data) != []


def test_an_input_that_is_not_a_list_is_refused_with_its_path():
    # (hypothesis found `"input": 1` raised a TypeError in the validator)
    data = {**base(), "input": 1}
    assert not validator_accepts(data)
    _, errors = parse(data)
    assert [(e.path, e.message) for e in errors] == [
        ("input", "must be a list of fields {name, type, required, ...}")
    ]
