"""The shared parts of the definition schema (``$defs``): what a duration, a condition, a
retry, a typed field, an escalation, a summary, an outcome or a process call may be, referred to
as ``#/$defs/<name>`` by the task and definition schemas (``schema_tasks``, ``schema``); and the
fields only a TIMER or a MESSAGE task reads."""

from __future__ import annotations

from typing import Any

from processes.spec.limits import MAX_DURATION, MAX_DURATION_TEXT
from processes.spec.schema_words import (
    DURATION_TEXT,
    IDENTIFIER,
    KEY,
    NAME,
    VAR_PATH,
    label,
    typed_field,
)
from processes.spec.types import (
    CONDITION_OPS,
    DATA_FIELD_TYPES,
    DEFAULT_MAX_ROUNDS,
    FORM_FIELD_TYPES,
    MAX_ROUNDS_LIMIT,
    SUMMARY_FORMATS,
    VALUE_TYPES,
)

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
    "field": typed_field(
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
    "form_field": typed_field(
        {
            "type": "string",
            "pattern": IDENTIFIER,
            "not": {"enum": ["decision", "comment"]},
            "description": "Where the value lands: `<task>.<name>` (not `decision` or `comment`).",
        },
        FORM_FIELD_TYPES,
    ),
    "list_items": {
        **typed_field(None, VALUE_TYPES),
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
            "label": label("Shown before the value.", required=True),
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
                    "label": label("The decision's words on the task page.", required=True),
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

# A TIMER's and a MESSAGE task's own fields: checked on those types only (``task_schema``'s
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


def waits_for(typed: dict, description: str) -> dict:
    """A field only one task type reads: any value here (an extra field on other types), its
    type under that type's rule (``x-typed``: the same, for the reference)."""
    return {"description": description, "x-typed": typed}
