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
``schema_tasks`` (a task's fields and the rules between them); this module puts them together.
"""

from __future__ import annotations

from typing import Any

from processes.spec.limits import MAX_DEPTH, MAX_DURATION_TEXT
from processes.spec.schema_defs import DEFS
from processes.spec.schema_tasks import task_schema
from processes.spec.schema_words import (
    DIALECT,
    KEY,
    NAME,
    NUMBER,
    RETENTION_TEXT,
    duration,
    fields,
    text,
)
from processes.spec.types import (
    BUSINESS_KEY_UNIQUE,
    VISIBILITIES,
)


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
