"""The words the definition schema is written in: patterns as ECMA 262 regular expressions,
and the small builders of its parts (a text, a duration, a list of paths, a typed field).
``schema`` puts them together; its docstring says what the schema checks and what it leaves to
the parser."""

from __future__ import annotations

import re
from typing import Any

from processes.spec.data import MAX_PLACES
from processes.spec.form_rules import DEFAULT_FILE_BYTES, FILE_TYPES, MAX_FILE_BYTES
from processes.spec.limits import NUMBER_LIMIT
from processes.spec.typed_fields import MAX_FIELDS, MAX_PATTERN
from processes.spec.types import (
    KEY_RE,
    LANGUAGE_RE,
    NAME_RE,
    TASK_TYPES,
    VAR_PATH_RE,
)

DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_PATH = "/api/definitions/schema.json"


def ecma(regex: re.Pattern) -> str:
    """A fullmatch regex of ``types`` (ending in ``\\Z``) as a JSON Schema pattern (``^…$``)."""
    source = regex.pattern
    assert source.endswith("\\Z"), source
    return "^" + source[: -len("\\Z")] + "$"


def any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in word)


KEY = ecma(KEY_RE)
NAME = ecma(NAME_RE)
VAR_PATH = ecma(VAR_PATH_RE)
IDENTIFIER = "^[A-Za-z0-9_]{1,100}$"  # a task, form field or outcome name: a path without dots
# parse_iso_duration: Django's ISO 8601 durations (days, hours, minutes, seconds), any case.
DURATION_TEXT = (
    r"^[Pp](\d+([.,]\d+)?[Dd])?([Tt](\d+([.,]\d+)?[Hh])?(\d+([.,]\d+)?[Mm])?(\d+([.,]\d+)?[Ss])?)?$"
)
# parse_retention: whole years, months, weeks or days (at least one), any case.
RETENTION_TEXT = r"^\s*[Pp](?=\S*\d)(\d+[Yy])?(\d+[Mm])?(\d+[Ww])?(\d+[Dd])?\s*$"
TASK_TYPE_PATTERN = "^(" + "|".join(any_case(t) for t in TASK_TYPES) + ")$"
# The parser's "empty": outcomes that are falsy mean "no outcomes".
EMPTY = [None, False, 0, "", [], {}]

HUMAN, SERVICE, PROCESS, TIMER, MESSAGE = "HUMAN", "SERVICE", "PROCESS", "TIMER", "MESSAGE"


def task_type_is(task_type: str) -> dict:
    """``if`` clause: the task's ``task_type`` is ``task_type`` (SERVICE when left out)."""
    pattern = {"pattern": "^" + any_case(task_type) + "$"}
    if task_type == SERVICE:
        return {
            "anyOf": [{"not": {"required": ["task_type"]}}, {"properties": {"task_type": pattern}}]
        }
    return {"required": ["task_type"], "properties": {"task_type": pattern}}


def text(description: str, *, max_length: int = 200, **extra) -> dict:
    """A non-blank string of at most ``max_length`` characters, or null (``_opt_str``)."""
    return {
        "description": description,
        "anyOf": [{"type": "null"}, {"type": "string", "pattern": r"\S", "maxLength": max_length}],
        **extra,
    }


def duration(description: str, **extra) -> dict:
    return {
        "description": description,
        "anyOf": [{"type": "null"}, {"$ref": "#/$defs/duration"}],
        **extra,
    }


def paths(description: str, **extra) -> dict:
    return {
        "description": description,
        "anyOf": [
            {"type": "string", "pattern": VAR_PATH},
            {"type": "array", "items": {"type": "string", "pattern": VAR_PATH}},
        ],
        **extra,
    }


NUMBER = {"type": "number", "minimum": -NUMBER_LIMIT, "maximum": NUMBER_LIMIT}


def label(description: str, *, required: bool = False) -> dict:
    """A label: a string, or translations by language code (``processes.spec.labels``)."""
    text = {"type": "string", "pattern": r"\S"} if required else {"type": "string"}
    return {
        "anyOf": [
            text,
            {
                "type": "object",
                "minProperties": 1,
                "propertyNames": {"pattern": ecma(LANGUAGE_RE)},
                "additionalProperties": text,
            },
        ],
        "description": description
        + ' A string, or the words by language: `{"en": "Amount", "fr": "Montant"}`.',
    }


def type_is(*types: str) -> dict:
    """``if`` clause: the field's ``type`` is one of ``types`` (``string`` when left out)."""
    clause: dict = {"properties": {"type": {"enum": list(types)}}}
    return clause if "string" in types else {"required": ["type"], **clause}


def typed_field(name: dict | None, types: tuple[str, ...]) -> dict:
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
                + ("; `file`: a file attached to the case (its id)" if "file" in types else "")
                + "."
            ),
        },
        "label": label("The words beside the field."),
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
        {"if": type_is("string", "text"), "else": {"properties": {"pattern": {"type": "null"}}}},
        {"if": type_is("decimal"), "else": {"properties": {"places": {"type": "null"}}}},
    ]
    if "file" in types:
        form_only(properties, rules)
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
                "if": type_is("list"),
                "then": {"required": ["items"]},
                "else": {"not": {"required": ["items"]}},
            }
        )
    schema["allOf"] = rules
    return schema


def form_only(properties: dict, rules: list) -> None:
    """A form's field may be a ``file`` and carry ``show_if``/``required_if`` (``form_rules``)."""
    rule = {
        "type": "object",
        "required": ["field", "equals"],
        "additionalProperties": False,
        "properties": {
            "field": {"type": "string", "pattern": IDENTIFIER},
            "equals": {"type": ["string", "number", "boolean", "null"]},
        },
    }
    properties |= {
        "accept": {
            "type": "array",
            "items": {"enum": [*FILE_TYPES, "application/*", "image/*", "text/*"]},
            "description": (
                "`file`: the content types taken, sniffed from the file's bytes (not its name); "
                "left out: every type Flowdesk recognises."
            ),
        },
        "max_size": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_FILE_BYTES,
            "default": DEFAULT_FILE_BYTES,
            "description": "`file`: the most bytes a file may have.",
        },
        "show_if": {
            **rule,
            "description": (
                "Ask for the field only when another field of the form (or `decision`) equals "
                "`equals`; otherwise its value is not kept."
            ),
        },
        "required_if": {
            **rule,
            "description": "The field is required when another field (or `decision`) equals "
            "`equals`.",
        },
    }
    rules.append(
        {
            "if": type_is("file"),
            "else": {"not": {"anyOf": [{"required": ["accept"]}, {"required": ["max_size"]}]}},
        }
    )


def fields(description: str, **item_rules) -> dict:
    """A list of typed fields (``input``, ``result``), or null: none declared (free-form)."""
    items = {"$ref": "#/$defs/field", **item_rules}
    return {
        "description": description,
        "anyOf": [{"type": "null"}, {"type": "array", "maxItems": MAX_FIELDS, "items": items}],
    }
