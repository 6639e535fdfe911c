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

Its parts: ``schema_words`` (patterns and builders), ``schema_defs`` (the shared ``$defs``),
``schema_tasks`` (a task's fields); this module adds the rules between a task's type and its
fields and puts them together.
"""

from __future__ import annotations

from typing import Any

from processes.spec.limits import MAX_DEPTH, MAX_DURATION_TEXT
from processes.spec.schedule import schedule_json_schema
from processes.spec.schema_defs import DEFS, MESSAGE_FIELD, UNTIL, WAIT
from processes.spec.schema_tasks import TASK_FIELDS
from processes.spec.schema_words import (
    DIALECT,
    EMPTY,
    HUMAN,
    KEY,
    MESSAGE,
    NAME,
    NUMBER,
    PROCESS,
    RETENTION_TEXT,
    SERVICE,
    TIMER,
    VAR_PATH,
    duration,
    fields,
    task_type_is,
    text,
)
from processes.spec.search import MAX_SEARCH_PATHS
from processes.spec.types import (
    BUSINESS_KEY_UNIQUE,
    ON_FAILURE,
    VISIBILITIES,
)

# Fields that must be absent (not even null) on tasks of other types: the parser checks presence.
PRESENCE_CHECKED = ("not_by", "not_by_var", "show", "external_decision")


def task_schema() -> dict:
    rules: list[dict] = [
        # HUMAN: a role, no handler; other types: nothing of a person's
        {
            "if": task_type_is(HUMAN),
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
            "if": task_type_is(PROCESS),
            "then": {
                "required": ["process"],
                "properties": {"handler": {"type": "null"}},
            },
            "else": {"properties": {"process": {"type": "null"}}},
        },
        # result: a SERVICE or MESSAGE task's; other types declare none (not even an empty list)
        {
            "if": {"anyOf": [task_type_is(SERVICE), task_type_is(MESSAGE)]},
            "else": {"properties": {"result": {"type": "null"}}},
        },
        # TIMER: a wait or an until (one of them), no handler (other types: extra fields)
        {
            "if": task_type_is(TIMER),
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
            "if": task_type_is(MESSAGE),
            "then": {
                "required": ["message"],
                "properties": {"handler": {"type": "null"}, "message": MESSAGE_FIELD},
            },
        },
        # inline: a SERVICE task with a handler
        {
            "if": {"required": ["inline"], "properties": {"inline": {"const": True}}},
            "then": {
                "allOf": [task_type_is(SERVICE)],
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
                        "allOf": [task_type_is(SERVICE)],
                        "required": ["timeout"],
                        "properties": {
                            "handler": {"type": "null"},
                            "timeout": {"not": {"type": "null"}},
                        },
                    },
                    {
                        "allOf": [task_type_is(HUMAN)],
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
            "component_name": text("How seed events find the definition; it belongs to one key."),
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
            "deadline": duration(
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
            "input": fields(
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
            "task": task_schema(),
        },
    }
    if schema_id:
        schema["$id"] = schema_id
    return schema
