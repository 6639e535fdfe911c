"""A task's fields in the definition schema, each with the task types it belongs to
(``TASK_FIELDS``); ``schema.task_schema`` adds the rules between a task's type and its fields."""

from __future__ import annotations

from processes.spec.schema_defs import MESSAGE_FIELD, UNTIL, WAIT, waits_for
from processes.spec.schema_words import (
    EMPTY,
    HUMAN,
    IDENTIFIER,
    MESSAGE,
    NAME,
    PROCESS,
    SERVICE,
    TASK_TYPE_PATTERN,
    TIMER,
    VAR_PATH,
    duration,
    fields,
    label,
    paths,
    text,
)
from processes.spec.types import (
    CONDITION_OPS,
    FORM_FIELD_TYPES,
    INITIATOR,
    ON_TIMEOUT,
)

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
        text("The external workers' queue (`GET /api/queues/{task_queue}/tasks/`)."),
        None,
    ),
    ("business_status", text("Set on the process when this task completes."), None),
    (
        "waiting_status",
        text(
            "Set on the process when this task is scheduled (what the case waits for); "
            "not on an inline step."
        ),
        None,
    ),
    ("label", label("The task's name for people."), None),
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
        text('The registered step handler run on a worker (`@step("name")`).'),
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
        duration("A step's time limit; an external task's wait limit (then `on_timeout` applies)."),
        (SERVICE,),
    ),
    (
        "compensate",
        text("Handler that undoes this task when the process is cancelled."),
        (SERVICE,),
    ),
    (
        "result",
        fields(
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
        duration("When the task is due after it is scheduled (marked overdue after)."),
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
        paths("Variable paths holding the username the decision is about (they may not decide)."),
        (HUMAN,),
    ),
    ("show", paths("The variable paths its deciders see (default: every variable)."), (HUMAN,)),
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
        waits_for(WAIT, "How long the timer waits once it is scheduled (or `until`)."),
        (TIMER,),
    ),
    (
        "until",
        waits_for(UNTIL, "A variable path holding the ISO 8601 date-time it fires at."),
        (TIMER,),
    ),
    (
        "message",
        waits_for(
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
