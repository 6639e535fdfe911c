"""The definition language as a JSON Schema (draft 2020-12), for editors and for the reference.

Built from the parser's own vocabulary (``types``, ``limits``, and the typed fields' bounds in
``fields`` and ``data``), so a new task type, operator, field type or format appears here by
itself. The schema checks the *shape* of a definition: the fields, their types, enumerations,
patterns and which task types may carry which fields. What needs the whole document or the
server (a parent in another stage, a cycle, duplicate names, a field named like a task, a
regular expression that doesn't compile, a handler nobody registered, a duration's upper bound,
``FLOWDESK_MAX_TASKS``) stays with ``parse``, the authority: anything ``parse`` accepts, the
schema accepts too (``tests/processes/test_spec_schema.py`` checks both directions on generated
definitions).

``GET /api/definitions/schema.json`` serves it; ``scripts/docs_reference.py`` writes the
reference page from the descriptions below.
"""

from __future__ import annotations

import re
from typing import Any

from processes.spec.data import MAX_PLACES
from processes.spec.fields import MAX_FIELDS, MAX_PATTERN
from processes.spec.limits import MAX_DEPTH, MAX_DURATION, MAX_DURATION_TEXT, NUMBER_LIMIT
from processes.spec.schedule import schedule_json_schema
from processes.spec.search import MAX_SEARCH_PATHS
from processes.spec.types import (
    BUSINESS_KEY_UNIQUE,
    CONDITION_OPS,
    DATA_FIELD_TYPES,
    DEFAULT_MAX_ROUNDS,
    FORM_FIELD_TYPES,
    INITIATOR,
    KEY_RE,
    MAX_ROUNDS_LIMIT,
    NAME_RE,
    ON_FAILURE,
    ON_TIMEOUT,
    SUMMARY_FORMATS,
    TASK_TYPES,
    VAR_PATH_RE,
    VISIBILITIES,
)

DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_PATH = "/api/definitions/schema.json"


def _ecma(regex: re.Pattern) -> str:
    """A fullmatch regex of ``types`` (ending in ``\\Z``) as a JSON Schema pattern (``^…$``)."""
    source = regex.pattern
    assert source.endswith("\\Z"), source
    return "^" + source[: -len("\\Z")] + "$"


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in word)


KEY = _ecma(KEY_RE)
NAME = _ecma(NAME_RE)
VAR_PATH = _ecma(VAR_PATH_RE)
IDENTIFIER = "^[A-Za-z0-9_]{1,100}$"  # a task, form field or outcome name: a path without dots
# parse_iso_duration: Django's ISO 8601 durations (days, hours, minutes, seconds), any case.
DURATION_TEXT = (
    r"^[Pp](\d+([.,]\d+)?[Dd])?([Tt](\d+([.,]\d+)?[Hh])?(\d+([.,]\d+)?[Mm])?(\d+([.,]\d+)?[Ss])?)?$"
)
# parse_retention: whole years, months, weeks or days (at least one), any case.
RETENTION_TEXT = r"^\s*[Pp](?=\S*\d)(\d+[Yy])?(\d+[Mm])?(\d+[Ww])?(\d+[Dd])?\s*$"
TASK_TYPE_PATTERN = "^(" + "|".join(_any_case(t) for t in TASK_TYPES) + ")$"
# The parser's "empty": outcomes that are falsy mean "no outcomes".
EMPTY = [None, False, 0, "", [], {}]

HUMAN, SERVICE, PROCESS, TIMER, MESSAGE = "HUMAN", "SERVICE", "PROCESS", "TIMER", "MESSAGE"


def _is(task_type: str) -> dict:
    """``if`` clause: the task's ``task_type`` is ``task_type`` (SERVICE when left out)."""
    pattern = {"pattern": "^" + _any_case(task_type) + "$"}
    if task_type == SERVICE:
        return {
            "anyOf": [{"not": {"required": ["task_type"]}}, {"properties": {"task_type": pattern}}]
        }
    return {"required": ["task_type"], "properties": {"task_type": pattern}}


def _text(description: str, *, max_length: int = 200, **extra) -> dict:
    """A non-blank string of at most ``max_length`` characters, or null (``_opt_str``)."""
    return {
        "description": description,
        "anyOf": [{"type": "null"}, {"type": "string", "pattern": r"\S", "maxLength": max_length}],
        **extra,
    }


def _duration(description: str, **extra) -> dict:
    return {
        "description": description,
        "anyOf": [{"type": "null"}, {"$ref": "#/$defs/duration"}],
        **extra,
    }


def _paths(description: str, **extra) -> dict:
    return {
        "description": description,
        "anyOf": [
            {"type": "string", "pattern": VAR_PATH},
            {"type": "array", "items": {"type": "string", "pattern": VAR_PATH}},
        ],
        **extra,
    }


NUMBER = {"type": "number", "minimum": -NUMBER_LIMIT, "maximum": NUMBER_LIMIT}


def _type_is(*types: str) -> dict:
    """``if`` clause: the field's ``type`` is one of ``types`` (``string`` when left out)."""
    clause: dict = {"properties": {"type": {"enum": list(types)}}}
    return clause if "string" in types else {"required": ["type"], **clause}


def _typed_field(name: dict | None, types: tuple[str, ...]) -> dict:
    """A typed field (``fields.parse_fields``): of a form (``name`` an identifier), of a
    definition's ``input`` or a SERVICE task's ``result`` (a variable path, and ``list``), or a
    list's ``items`` (``name`` None: no name, no ``items`` of its own, other keys ignored)."""
    properties: dict[str, Any] = {} if name is None else {"name": name}
    properties |= {
        "type": {
            "enum": list(types),
            "default": "string",
            "description": (
                "`string`: one line; `text`: line breaks allowed; `decimal`: stored as text "
                '(`"409.32"`), never a float; `date`: `YYYY-MM-DD`; `choice`: one of `choices`'
                + ("; `list`: a list of `items`" if "list" in types else "")
                + "."
            ),
        },
        "label": {"description": "The words beside the field."},
        "required": {
            "type": "boolean",
            "default": False,
            "description": "A value is needed: missing, `null` or empty is refused.",
        },
        "min": {
            **NUMBER,
            "description": "Least value of an integer or decimal"
            + ("; a list's fewest elements." if "list" in types else "."),
        },
        "max": {
            **NUMBER,
            "description": "Greatest value of an integer or decimal"
            + ("; a list's most elements." if "list" in types else "."),
        },
        "pattern": {
            "anyOf": [
                {"type": "null"},
                {"type": "string", "minLength": 1, "maxLength": MAX_PATTERN},
            ],
            "description": (
                "`string`, `text`: a regular expression the whole value must match (no "
                "repetition inside a repetition, such as `(a+)+`)."
            ),
        },
        "places": {
            "anyOf": [{"type": "null"}, {"type": "integer", "minimum": 0, "maximum": MAX_PLACES}],
            "description": (
                "`decimal`: at most this many decimal places; the value is stored with exactly "
                'this many (`"409.30"`).'
            ),
        },
        "choices": {"description": "A `choice` field's values: a non-empty list of strings."},
    }
    rules: list[dict] = [
        {
            "if": {"required": ["type"], "properties": {"type": {"const": "choice"}}},
            "then": {
                "required": ["choices"],
                "properties": {
                    "choices": {"type": "array", "minItems": 1, "items": {"type": "string"}}
                },
            },
        },
        {"if": _type_is("string", "text"), "else": {"properties": {"pattern": {"type": "null"}}}},
        {"if": _type_is("decimal"), "else": {"properties": {"places": {"type": "null"}}}},
    ]
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if name is None:  # a list's items: the parser reads its keys, and ignores others
        schema["not"] = {"anyOf": [{"required": ["name"]}, {"required": ["items"]}]}
    else:
        schema["required"] = ["name"]
        schema["additionalProperties"] = False  # fields.FIELD_KEYS: other keys are refused
    if "list" in types:
        properties["items"] = {
            "$ref": "#/$defs/list_items",
            "description": '`list`: what each element is (`{"type": "string", ...}`).',
        }
        rules.append(
            {
                "if": _type_is("list"),
                "then": {"required": ["items"]},
                "else": {"not": {"required": ["items"]}},
            }
        )
    schema["allOf"] = rules
    return schema


def _fields(description: str, **item_rules) -> dict:
    """A list of typed fields (``input``, ``result``), or null: none declared (free-form)."""
    items = {"$ref": "#/$defs/field", **item_rules}
    return {
        "description": description,
        "anyOf": [{"type": "null"}, {"type": "array", "maxItems": MAX_FIELDS, "items": items}],
    }


DEFS: dict[str, Any] = {
    "duration": {
        "description": (
            "An ISO 8601 duration of days, hours, minutes and seconds (`PT30S`, `P2D`, "
            f"`P1DT12H`) or a number of seconds; at most {MAX_DURATION_TEXT} (10 years)."
        ),
        "anyOf": [
            {"type": "number", "minimum": 0, "maximum": MAX_DURATION.total_seconds()},
            {"type": "string", "maxLength": 40, "pattern": DURATION_TEXT},
        ],
    },
    "condition": {
        "description": (
            "A declarative rule on the variables, never code: a leaf `{var, op, value}` or "
            "`{all: [...]}`, `{any: [...]}`, `{not: ...}`."
        ),
        "anyOf": [
            {
                "type": "object",
                "required": ["all"],
                "additionalProperties": False,
                "properties": {
                    "all": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/condition"}}
                },
            },
            {
                "type": "object",
                "required": ["any"],
                "additionalProperties": False,
                "properties": {
                    "any": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/condition"}}
                },
            },
            {
                "type": "object",
                "required": ["not"],
                "additionalProperties": False,
                "properties": {"not": {"$ref": "#/$defs/condition"}},
            },
            {"$ref": "#/$defs/condition_leaf"},
        ],
    },
    "condition_leaf": {
        "type": "object",
        "required": ["var"],
        "additionalProperties": False,
        "properties": {
            "var": {
                "type": "string",
                "pattern": VAR_PATH,
                "description": "A variable path, e.g. `approve_bonus.decision`.",
            },
            "op": {
                "enum": list(CONDITION_OPS),
                "default": "eq",
                "description": "The comparison; `in` and `not_in` take a list.",
            },
            "value": {"description": "What the variable is compared with."},
        },
        "allOf": [
            {
                "if": {"required": ["op"], "properties": {"op": {"enum": ["in", "not_in"]}}},
                "then": {"required": ["value"], "properties": {"value": {"type": "array"}}},
            },
            {
                "if": {"required": ["op"], "properties": {"op": {"enum": ["exists", "truthy"]}}},
                "else": {"required": ["value"]},
            },
        ],
    },
    "retry": {
        "description": "How often and when a failed step is tried again.",
        "anyOf": [
            {"type": "integer", "minimum": 1, "maximum": 100},
            {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "max_attempts": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": 100,
                        "default": 3,
                        "description": "Attempts in all, the first included.",
                    },
                    "backoff": {
                        "$ref": "#/$defs/duration",
                        "default": "PT5S",
                        "description": "The wait before the second attempt.",
                    },
                    "backoff_factor": {
                        "type": "number",
                        "minimum": 1,
                        "maximum": 10,
                        "default": 2,
                        "description": "Each further wait is the previous one times this.",
                    },
                    "max_backoff": {
                        "$ref": "#/$defs/duration",
                        "default": "PT1H",
                        "description": "No wait is longer than this.",
                    },
                },
            },
        ],
    },
    "on_error": {
        "type": "object",
        "properties": {
            "notify": {
                "type": "boolean",
                "default": True,
                "description": "`false`: no incident SMS when this fails for good.",
            }
        },
    },
    "field": _typed_field(
        {
            "type": "string",
            "pattern": VAR_PATH,
            "description": (
                "A variable path: `bonus.amount` is the `amount` key of the `bonus` object (a "
                "result's names are below the task's name). Not both `a` and `a.b`."
            ),
        },
        DATA_FIELD_TYPES,
    ),
    "form_field": _typed_field(
        {
            "type": "string",
            "pattern": IDENTIFIER,
            "not": {"enum": ["decision", "comment"]},
            "description": "Where the value lands: `<task>.<name>` (not `decision` or `comment`).",
        },
        FORM_FIELD_TYPES,
    ),
    "list_items": {
        **_typed_field(None, FORM_FIELD_TYPES),
        "description": "What each element of a `list` is: a field without a name.",
    },
    "escalation": {
        "type": "object",
        "required": ["after"],
        "properties": {
            "after": {
                "$ref": "#/$defs/duration",
                "description": "How long after the task was scheduled (more than zero).",
            },
            "to": {
                "anyOf": [{"type": "null"}, {"type": "string", "pattern": NAME}],
                "description": "The role the task moves to; without it, a reminder is sent.",
            },
            "notify": {
                "type": "boolean",
                "default": True,
                "description": "Tell the people concerned (and SMS the on-call admins).",
            },
        },
    },
    "summary_item": {
        "type": "object",
        "required": ["label", "var"],
        "additionalProperties": False,
        "properties": {
            "label": {"type": "string", "pattern": r"\S", "description": "Shown before the value."},
            "var": {"type": "string", "pattern": VAR_PATH, "description": "The variable shown."},
            "format": {
                "enum": list(SUMMARY_FORMATS),
                "default": "text",
                "description": "How the value is shown (`money` with a currency).",
            },
            "currency": {
                "anyOf": [{"type": "null"}, {"type": "string", "pattern": "^[A-Z]{3}$"}],
                "description": "`money`: a fixed ISO 4217 currency, e.g. `EUR`.",
            },
            "currency_var": {
                "anyOf": [{"type": "null"}, {"type": "string", "pattern": VAR_PATH}],
                "description": "`money`: the variable holding the currency.",
            },
        },
        "if": {
            "anyOf": [
                {"required": ["currency"], "properties": {"currency": {"type": "string"}}},
                {"required": ["currency_var"], "properties": {"currency_var": {"type": "string"}}},
            ]
        },
        "then": {"required": ["format"], "properties": {"format": {"const": "money"}}},
    },
    "outcome_options": {
        "anyOf": [
            {"type": "null"},
            {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "goto": {
                        "anyOf": [{"type": "null"}, {"type": "string", "minLength": 1}],
                        "description": "Send the process back to this stage (its own or an earlier one).",
                    },
                    "max_rounds": {
                        "type": "integer",
                        "minimum": 2,
                        "maximum": MAX_ROUNDS_LIMIT,
                        "default": DEFAULT_MAX_ROUNDS,
                        "description": "Rounds in all, the first included.",
                    },
                },
                "dependentSchemas": {
                    "max_rounds": {
                        "required": ["goto"],
                        "properties": {"goto": {"type": "string"}},
                    }
                },
            },
        ]
    },
    "process_call": {
        "type": "object",
        "required": ["definition"],
        "additionalProperties": False,
        "properties": {
            "definition": {
                "type": "string",
                "pattern": KEY,
                "description": "The key of the child's definition.",
            },
            "version": {
                "anyOf": [{"type": "null"}, {"type": "integer", "minimum": 1}],
                "description": "Pin a version; left out: the newest published one.",
            },
            "for_each": {
                "anyOf": [{"type": "null"}, {"type": "string", "pattern": VAR_PATH}],
                "description": "A list variable: one child per element (`item`, `index`).",
            },
            "business_key": {
                "anyOf": [
                    {"type": "null"},
                    {"type": "string", "pattern": VAR_PATH},
                    {
                        "type": "string",
                        "pattern": r"^([^{}]|\{[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*\})+$",
                    },
                ],
                "description": (
                    "A variable path or a template such as `SAL-{period}-{item}`; default "
                    "`<parent key>:<task>[:<index>]`."
                ),
            },
            "input": {
                "type": "object",
                "propertyNames": {"pattern": IDENTIFIER},
                "additionalProperties": {"type": "string", "pattern": VAR_PATH},
                "description": "Child variable → parent variable path.",
            },
            "output": {
                "type": "object",
                "propertyNames": {"pattern": IDENTIFIER},
                "additionalProperties": {"type": "string", "pattern": VAR_PATH},
                "description": "Result field → path in the child's variables.",
            },
        },
    },
}

# A TIMER's and a MESSAGE task's own fields: checked on those types only (``_task_schema``'s
# rules); on other types they are extra fields, kept and passed on like any other.
WAIT = {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/duration"}]}
UNTIL = {"anyOf": [{"type": "null"}, {"type": "string", "pattern": VAR_PATH}]}
MESSAGE_FIELD = {
    "type": "object",
    "required": ["name", "key"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": NAME},
        "key": {"type": "string", "pattern": VAR_PATH},
    },
}


def _waits_for(typed: dict, description: str) -> dict:
    """A field only one task type reads: any value here (an extra field on other types), its
    type under that type's rule (``x-typed``: the same, for the reference)."""
    return {"description": description, "x-typed": typed}


# A task's fields: (name, schema, task types it belongs to or None for every type).
TASK_FIELDS: list[tuple[str, dict, tuple[str, ...] | None]] = [
    (
        "task_name",
        {
            "type": "string",
            "pattern": IDENTIFIER,
            "description": "Unique in the definition: letters, digits and `_`.",
        },
        None,
    ),
    (
        "task_type",
        {
            "type": "string",
            "pattern": TASK_TYPE_PATTERN,
            "default": SERVICE,
            "description": (
                "`SERVICE`: a handler on a worker, or an external system when it has no "
                "`handler`; `HUMAN`: a person of the role `assigned_to` decides; `PROCESS`: "
                "starts child processes and waits for them; `TIMER`: waits for a duration or "
                "a moment; `MESSAGE`: waits for a message (`POST /api/messages/`). Any case."
            ),
        },
        None,
    ),
    (
        "parent_task",
        {
            "description": (
                "Tasks of the same stage that must be completed or skipped first; none: the "
                "task starts with its stage (tasks without parents run in parallel)."
            ),
            "anyOf": [
                {"type": "null"},
                {"type": "string", "minLength": 1},
                {
                    "type": "array",
                    "uniqueItems": True,
                    "items": {"type": "string", "minLength": 1},
                },
            ],
        },
        None,
    ),
    (
        "task_queue",
        _text("The external workers' queue (`GET /api/queues/{task_queue}/tasks/`)."),
        None,
    ),
    ("business_status", _text("Set on the process when this task completes."), None),
    (
        "waiting_status",
        _text(
            "Set on the process when this task is scheduled (what the case waits for); "
            "not on an inline step."
        ),
        None,
    ),
    ("label", {"type": "string", "description": "The task's name for people."}, None),
    ("description", {"type": "string", "description": "Instructions on the task page."}, None),
    (
        "condition",
        {
            "description": (
                "Skip the task when this is false at the moment it becomes ready (ops: "
                + ", ".join(f"`{op}`" for op in CONDITION_OPS)
                + ")."
            ),
            "anyOf": [{"type": "null"}, {"$ref": "#/$defs/condition"}],
        },
        None,
    ),
    (
        "on_error",
        {
            "$ref": "#/$defs/on_error",
            "description": '`{"notify": false}` turns off the incident SMS for this task.',
        },
        None,
    ),
    (
        "handler",
        _text('The registered step handler run on a worker (`@step("name")`).'),
        (SERVICE,),
    ),
    (
        "inline",
        {
            "type": "boolean",
            "default": False,
            "description": (
                "`true`: a pure-compute handler runs inside the engine transaction that makes "
                "the step ready (no queue, no lease, no database). Needs a `handler`."
            ),
        },
        (SERVICE,),
    ),
    (
        "retry",
        {
            "description": (
                "`{max_attempts, backoff, backoff_factor, max_backoff}`, or a number of attempts."
            ),
            "anyOf": [{"type": "null"}, {"$ref": "#/$defs/retry"}],
        },
        (SERVICE,),
    ),
    (
        "timeout",
        _duration(
            "A step's time limit; an external task's wait limit (then `on_timeout` applies)."
        ),
        (SERVICE,),
    ),
    (
        "compensate",
        _text("Handler that undoes this task when the process is cancelled."),
        (SERVICE,),
    ),
    (
        "result",
        _fields(
            "The fields of what the task brings back, typed like `input` and named below the "
            "task (`amount` is `<task>.amount`): a handler's result that breaks it fails the "
            "attempt, an external task's `TaskCompleted` is refused (400), a MESSAGE task's "
            "message too. None: any JSON object."
        ),
        (SERVICE, MESSAGE),
    ),
    (
        "assigned_to",
        {
            "description": "The role (Django group) whose members may claim and decide the task.",
            "anyOf": [
                {"type": "null"},
                {"type": "string", "pattern": NAME, "maxLength": 200},
            ],
        },
        (HUMAN,),
    ),
    (
        "assignee",
        {
            "description": "A variable path holding the username the task is assigned to.",
            "anyOf": [{"type": "null"}, {"type": "string", "pattern": VAR_PATH}],
        },
        (HUMAN,),
    ),
    (
        "outcomes",
        {
            "description": (
                "The decisions a person may take, stored as `<task>.decision`: a list "
                '(`["approve", "reject"]`), or an object whose options `{"goto": stage, '
                '"max_rounds": n}` send the process back for rework.'
            ),
            "anyOf": [
                {"enum": EMPTY},
                {
                    "type": "array",
                    "uniqueItems": True,
                    "items": {"type": "string", "pattern": VAR_PATH},
                },
                {
                    "type": "object",
                    "propertyNames": {"pattern": VAR_PATH},
                    "additionalProperties": {"$ref": "#/$defs/outcome_options"},
                },
            ],
        },
        (HUMAN,),
    ),
    (
        "form",
        {
            "description": (
                "Typed fields of the decision form (types: "
                + ", ".join(f"`{t}`" for t in FORM_FIELD_TYPES)
                + ")."
            ),
            "anyOf": [{"type": "null"}, {"type": "array", "items": {"$ref": "#/$defs/form_field"}}],
        },
        (HUMAN,),
    ),
    (
        "due",
        _duration("When the task is due after it is scheduled (marked overdue after)."),
        (HUMAN,),
    ),
    (
        "escalation",
        {
            "description": "`{after, to, notify}`: move an overdue task to another role, or remind.",
            "anyOf": [{"type": "null"}, {"$ref": "#/$defs/escalation"}],
        },
        (HUMAN,),
    ),
    (
        "not_by",
        {
            "description": (
                f"Separation of duties: `{INITIATOR}` (whoever started the process) or other "
                "human tasks' names (whoever decided them: four eyes)."
            ),
            "anyOf": [
                {"type": "string", "pattern": IDENTIFIER},
                {"type": "array", "items": {"type": "string", "pattern": IDENTIFIER}},
            ],
        },
        (HUMAN,),
    ),
    (
        "not_by_var",
        _paths("Variable paths holding the username the decision is about (they may not decide)."),
        (HUMAN,),
    ),
    ("show", _paths("The variable paths its deciders see (default: every variable)."), (HUMAN,)),
    (
        "summary",
        {
            "description": "The facts a decider needs first: `[{label, var, format}]`.",
            "anyOf": [
                {"type": "null"},
                {"type": "array", "items": {"$ref": "#/$defs/summary_item"}},
            ],
        },
        (HUMAN,),
    ),
    (
        "explain",
        {
            "description": (
                "How the amount came about, e.g. base, rating, rate, amount: `[{label, var, "
                "format}]`, shown to the decider in that order."
            ),
            "anyOf": [
                {"type": "null"},
                {"type": "array", "items": {"$ref": "#/$defs/summary_item"}},
            ],
        },
        (HUMAN,),
    ),
    (
        "external_decision",
        {
            "type": "boolean",
            "default": False,
            "description": "`true`: a seed `TaskCompleted` may carry the decision.",
        },
        (HUMAN,),
    ),
    (
        "on_timeout",
        {
            "enum": list(ON_TIMEOUT),
            "default": "incident",
            "description": (
                "When an external task's `timeout` or a human task's `due` (without "
                "`escalation`) passes: an incident while it still waits, fail, or skip."
            ),
        },
        (SERVICE, HUMAN),
    ),
    (
        "wait",
        _waits_for(WAIT, "How long the timer waits once it is scheduled (or `until`)."),
        (TIMER,),
    ),
    (
        "until",
        _waits_for(UNTIL, "A variable path holding the ISO 8601 date-time it fires at."),
        (TIMER,),
    ),
    (
        "message",
        _waits_for(
            MESSAGE_FIELD,
            "`{name, key}`: the message waited for, and the variable path whose value is its "
            "correlation key.",
        ),
        (MESSAGE,),
    ),
    (
        "process",
        {
            "$ref": "#/$defs/process_call",
            "description": "`{definition, version, for_each, business_key, input, output}`.",
        },
        (PROCESS,),
    ),
]

# Fields that must be absent (not even null) on tasks of other types: the parser checks presence.
PRESENCE_CHECKED = ("not_by", "not_by_var", "show", "external_decision")


def _task_schema() -> dict:
    rules: list[dict] = [
        # HUMAN: a role, no handler; other types: nothing of a person's
        {
            "if": _is(HUMAN),
            "then": {
                "required": ["assigned_to"],
                "properties": {"assigned_to": {"type": "string"}, "handler": {"type": "null"}},
            },
            "else": {
                "not": {"anyOf": [{"required": [name]} for name in PRESENCE_CHECKED]},
                "properties": {
                    "form": {"enum": [None, []]},
                    "escalation": {"type": "null"},
                    "summary": {"enum": [None, []]},
                    "explain": {"enum": [None, []]},
                    "outcomes": {"enum": EMPTY},
                },
            },
        },
        # PROCESS: the child process, no handler; other types: no child process
        {
            "if": _is(PROCESS),
            "then": {
                "required": ["process"],
                "properties": {"handler": {"type": "null"}},
            },
            "else": {"properties": {"process": {"type": "null"}}},
        },
        # result: a SERVICE or MESSAGE task's; other types declare none (not even an empty list)
        {
            "if": {"anyOf": [_is(SERVICE), _is(MESSAGE)]},
            "else": {"properties": {"result": {"type": "null"}}},
        },
        # TIMER: a wait or an until (one of them), no handler (other types: extra fields)
        {
            "if": _is(TIMER),
            "then": {
                "properties": {"handler": {"type": "null"}, "wait": WAIT, "until": UNTIL},
                "anyOf": [
                    {
                        "required": ["wait"],
                        "properties": {
                            "wait": {"not": {"type": "null"}},
                            "until": {"type": "null"},
                        },
                    },
                    {
                        "required": ["until"],
                        "properties": {
                            "until": {"not": {"type": "null"}},
                            "wait": {"type": "null"},
                        },
                    },
                ],
            },
        },
        # MESSAGE: the message, no handler (other types: an extra field)
        {
            "if": _is(MESSAGE),
            "then": {
                "required": ["message"],
                "properties": {"handler": {"type": "null"}, "message": MESSAGE_FIELD},
            },
        },
        # inline: a SERVICE task with a handler
        {
            "if": {"required": ["inline"], "properties": {"inline": {"const": True}}},
            "then": {
                "allOf": [_is(SERVICE)],
                "required": ["handler"],
                "properties": {"handler": {"type": "string"}},
            },
        },
        # on_timeout: an external task with a timeout, or a HUMAN task with a due and no escalation
        {
            "if": {"required": ["on_timeout"]},
            "then": {
                "anyOf": [
                    {
                        "allOf": [_is(SERVICE)],
                        "required": ["timeout"],
                        "properties": {
                            "handler": {"type": "null"},
                            "timeout": {"not": {"type": "null"}},
                        },
                    },
                    {
                        "allOf": [_is(HUMAN)],
                        "required": ["due"],
                        "properties": {
                            "due": {"not": {"type": "null"}},
                            "escalation": {"type": "null"},
                        },
                    },
                ]
            },
        },
    ]
    properties = {}
    for name, schema, types in TASK_FIELDS:
        entry = dict(schema)
        if types is not None:
            entry["x-task-types"] = list(types)
        properties[name] = entry
    return {
        "type": "object",
        "description": (
            "One task. Fields this language does not know are kept and passed on in the "
            "external task's StartTask payload, as the seed's workflow manager does."
        ),
        "required": ["task_name"],
        "properties": properties,
        "allOf": rules,
    }


def definition_schema(schema_id: str | None = None) -> dict:
    """The JSON Schema of a process definition; ``schema_id``: the URL it is served at."""
    schema: dict[str, Any] = {
        "$schema": DIALECT,
        "title": "Flowdesk process definition",
        "description": (
            "A native Flowdesk definition or a seed-002 workflow template (which imports "
            "unchanged). The server's validator is the authority: it also checks what needs "
            "the whole document (parents in the same stage, no cycle, unique names, known "
            "handlers, rework going back only, patterns that compile, durations at most "
            f"{MAX_DURATION_TEXT}, the task limit) and reports every problem with its JSON "
            f"path. Nesting: at most {MAX_DEPTH} levels; numbers within ±1e15."
        ),
        "type": "object",
        "required": ["stages"],
        # ``workflow_name`` when present (even null), else ``name``
        "anyOf": [
            {"required": ["workflow_name"]},
            {"required": ["name"], "properties": {"name": {"type": "string", "pattern": r"\S"}}},
        ],
        "properties": {
            "workflow_name": {
                "type": "string",
                "pattern": r"\S",
                "description": "The process's name (the seed's field).",
            },
            "name": {
                "description": "Another spelling of `workflow_name` (used when that is absent)."
            },
            "key": {
                "anyOf": [{"type": "null"}, {"type": "string", "pattern": KEY}],
                "description": (
                    "The definition's key in URLs and the API: lower-case letters, digits, "
                    "`-`, `_`, `.`. Default: the key owning `component_name`, else a slug of "
                    "`component_name` or `workflow_name`."
                ),
            },
            "component_name": _text("How seed events find the definition; it belongs to one key."),
            "description": {"type": "string", "description": "What the process is for."},
            "on_error": {
                "$ref": "#/$defs/on_error",
                "description": '`{"notify": false}` turns off incident SMS for every task.',
            },
            "visibility": {
                "enum": list(VISIBILITIES),
                "default": "participants",
                "description": (
                    "What the rest of a role sees of a human task someone else holds, and of "
                    "closed tasks."
                ),
            },
            "business_key_unique": {
                "enum": list(BUSINESS_KEY_UNIQUE),
                "default": "active",
                "description": (
                    "`active`: one running or failed instance per business key; `ever`: a "
                    "second start returns the existing instance whatever its state."
                ),
            },
            "schedule": schedule_json_schema(),
            "on_failure": {
                "enum": list(ON_FAILURE),
                "default": "incident",
                "description": (
                    "What a task that fails for good does: `incident` (the process waits for an "
                    "operator) or `compensate` (the completed tasks with a `compensate` handler "
                    "are undone newest first and the process ends `compensated`)."
                ),
            },
            "deadline": _duration(
                "From the start: one incident SMS when it passes while the process still runs."
            ),
            "retention": {
                "anyOf": [{"type": "null"}, {"type": "string", "pattern": RETENTION_TEXT}],
                "description": (
                    "How long closed instances are kept before `manage.py archive_processes` "
                    "archives them: whole years, months, weeks or days (`P7Y`, `P90D`); none: "
                    "kept for ever."
                ),
            },
            "search": {
                "description": (
                    "The variable paths operators find cases by, besides the business key "
                    "(`employee_id`, `salary_base.employee_name`): a case-insensitive partial "
                    "match in the admin, the inbox and the API (`?q=`)."
                ),
                "anyOf": [
                    {"type": "null"},
                    {"type": "string", "pattern": VAR_PATH},
                    {
                        "type": "array",
                        "maxItems": MAX_SEARCH_PATHS,
                        "items": {"type": "string", "pattern": VAR_PATH},
                    },
                ],
            },
            "input": _fields(
                "The fields a process is started with, each checked and converted to its type "
                "at every way in (API, batch and the admin's CSV, CLI, seed events, a "
                "parent's call); anything else is refused. None: free-form input.",
                properties={"name": {"not": {"pattern": r"^rework(\.|$)"}}},  # rework loops' own
            ),
            "stages": {
                "type": "array",
                "minItems": 1,
                "items": {"$ref": "#/$defs/stage"},
                "contains": {
                    "properties": {"tasks": {"type": "array", "minItems": 1}},
                    "required": ["tasks"],
                },
                "description": "Run one after the other in `stage_order`.",
            },
        },
        "$defs": {
            **DEFS,
            "stage": {
                "type": "object",
                "required": ["stage_name", "stage_order"],
                "properties": {
                    "stage_name": {
                        "type": "string",
                        "pattern": NAME,
                        "description": "Unique: letters, digits, `_`, space, `.`, `:`, `-`.",
                    },
                    "stage_order": {
                        **NUMBER,
                        "description": "The stage's position (unique; any number).",
                    },
                    "tasks": {
                        "anyOf": [
                            {"type": "null"},
                            {"type": "array", "items": {"$ref": "#/$defs/task"}},
                        ],
                        "description": "The stage is done when all its tasks are done or skipped.",
                    },
                },
            },
            "task": _task_schema(),
        },
    }
    if schema_id:
        schema["$id"] = schema_id
    return schema
