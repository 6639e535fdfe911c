"""OpenAPI of ``/api/processes/``: list, start, one process, events, cancel, variables."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)

from processes.api import schema as s
from processes.api import serializers as ser

EVENT_EXAMPLE = {
    "id": 8123,
    "seq": 1,
    "type": "process_started",
    "task": "",
    "actor_type": "api",
    "actor": "shop-frontend",
    "created_at": "2026-11-23T10:00:00Z",
    "data": {"definition": "pizza", "version": 1, "business_key": "ORDER-001"},
    "correlation_id": "req-7f3a",
    "caused_by": None,
}

list_processes = extend_schema(
    tags=["processes"],
    summary="List processes",
    description="Newest first; only instances of definitions the caller may see.",
    responses={200: ser.ProcessSerializer(many=True), **s.READ_ERRORS},
    examples=[s.response_example("page", s.page_of(s.PROCESS_EXAMPLE), "200")],
)

start_process = extend_schema(
    tags=["processes"],
    summary="Start a process",
    description=(
        "Starts the newest published version of `definition`. The same `business_key` while "
        "an instance is active (running or failed) → 200 with that instance, nothing new "
        'is started. Under `business_key_unique: "ever"`, any earlier instance → 200 with it; '
        "one that retention archived → 200 with its identity, `archived: true` and the "
        "`archive` file it is in (no `Location`: its row is gone). Needs `start_process` on "
        "the definition. `Location` names the instance. "
        "A definition that declares its `input` gets it checked and converted (a decimal is "
        'text such as `"409.32"`, never a JSON float); a bad value → 400 with `fields` keyed '
        "`input.<path>` (e.g. `input.period`) and nothing is started. The business key is "
        "trimmed; control and bidi format characters in it → 400."
    ),
    parameters=[s.IDEMPOTENCY_KEY],
    request=ser.ProcessStartSerializer,
    responses={
        201: OpenApiResponse(ser.ProcessDetailSerializer, description="Started."),
        200: OpenApiResponse(
            PolymorphicProxySerializer(
                component_name="ProcessExistingOrArchived",
                serializers=[ser.ProcessDetailSerializer, ser.ArchivedProcessSerializer],
                resource_type_field_name=None,
            ),
            description="The business key's instance: the same one, or the archived one.",
        ),
        **s.WRITE_ERRORS,
    },
    examples=[
        s.request_example(
            "start", {"definition": "pizza", "business_key": "ORDER-001", "input": {"size": "L"}}
        ),
        s.response_example("started", s.PROCESS_DETAIL_EXAMPLE, "201", "200"),
    ],
)

BATCH_RESULT_EXAMPLE = {
    "summary": {"created": 1, "existing": 1, "invalid": 1},
    "items": [
        {
            "index": 0,
            "business_key": "SAL-2026-11-E001",
            "status": 201,
            "process": s.PROCESS_ID,
            "state": "running",
            "archived": False,
            "archive": None,
            "errors": {},
        },
        {
            "index": 1,
            "business_key": "SAL-2026-10-E001",
            "status": 200,
            "process": "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d",
            "state": "completed",
            "archived": True,
            "archive": {
                "file": "salary/archive-20331201T020000-0001.jsonl",
                "archived_at": "2033-12-01T02:00:04Z",
            },
            "errors": {},
        },
        {
            "index": 2,
            "business_key": "",
            "status": 400,
            "process": None,
            "state": "",
            "archived": False,
            "archive": None,
            "errors": {"input.period": ["this field is required"]},
        },
    ],
}

start_batch = extend_schema(
    tags=["processes"],
    summary="Start many processes (the monthly run)",
    description=(
        "Starts one instance of the newest published version of `definition` per item, up to "
        "10,000 items (body up to `FLOWDESK_BATCH_MAX_BYTES`, 16 MB by default). Each item is "
        "answered on its own, in request order: `status` 201 (started), 200 (its business key "
        "already has an instance, the single start's rule: nothing new is started, so the "
        "batch can be sent again safely; `archived` and `archive` say when retention archived "
        "that instance) or 400 (invalid item, `errors` by field; a business "
        "key repeated in the batch is invalid from its second occurrence; its `input` is "
        "checked like a single start's, errors keyed `input.<path>`). Needs "
        "`start_process` on the definition, like a single start."
    ),
    parameters=[s.IDEMPOTENCY_KEY],
    request=ser.ProcessBatchSerializer,
    responses={
        200: OpenApiResponse(ser.BatchResultSerializer, description="One answer per item."),
        **s.WRITE_ERRORS,
    },
    examples=[
        s.request_example(
            "batch",
            {
                "definition": "salary",
                "items": [
                    {
                        "business_key": "SAL-2026-11-E001",
                        "input": {"employee_id": "E001", "period": "2026-11"},
                    }
                ],
            },
        ),
        s.response_example("answers", BATCH_RESULT_EXAMPLE, "200"),
    ],
)

process_detail = extend_schema(
    tags=["processes"],
    summary="One process (now, or as it was at a point in time)",
    description=(
        "State, business status, current stage, variables and every task. With `as_of` "
        "(ISO 8601), the state rebuilt from the events recorded up to that moment instead: "
        "state, stage, business status, variables and each task's state then, and `last_seq`, "
        "the last event folded in. A malformed `as_of` → 400 naming the field; a moment before "
        "the process started → 404."
    ),
    parameters=[
        OpenApiParameter(
            "as_of",
            OpenApiTypes.DATETIME,
            required=False,
            description="Answer the state rebuilt from the events up to this moment.",
        )
    ],
    responses={
        200: PolymorphicProxySerializer(
            component_name="ProcessDetailOrAsOf",
            serializers=[ser.ProcessDetailSerializer, ser.ProcessAsOfSerializer],
            resource_type_field_name=None,
        ),
        **s.READ_ERRORS,
    },
    examples=[
        s.response_example("process", s.PROCESS_DETAIL_EXAMPLE, "200"),
        s.response_example(
            "as_of",
            {
                "id": s.PROCESS_ID,
                "url": f"/api/processes/{s.PROCESS_ID}/",
                "definition": "pizza",
                "version": 1,
                "business_key": "ORDER-001",
                "as_of": "2026-11-23T10:05:00Z",
                "last_seq": 4,
                "last_event_at": "2026-11-23T10:00:01Z",
                "state": "running",
                "business_status": "",
                "current_stage": "ORDER",
                "variables": {"size": "L"},
                "tasks": [{"name": "confirm_order", "state": "scheduled"}],
            },
            "200",
        ),
    ],
)

process_events = extend_schema(
    tags=["processes"],
    summary="The audit log of a process",
    description="Every event in order (`seq` is gapless). `?after=<seq>` returns newer ones.",
    parameters=[
        OpenApiParameter("after", OpenApiTypes.INT, description="Only events after this seq.")
    ],
    responses={200: ser.ProcessEventSerializer(many=True), **s.READ_ERRORS},
    examples=[s.response_example("events", s.page_of(EVENT_EXAMPLE), "200")],
)

ROUND_EXAMPLE = {
    "task": "approve_bonus",
    "round": 1,
    "execution": 1,
    "state": "completed",
    "result": {"decision": "rework", "comment": "count the Q3 project", "decided_by": "mia"},
    "decided_by": "mia",
    "attempts": 0,
    "scheduled_at": "2026-11-23T10:00:00Z",
    "started_at": None,
    "finished_at": "2026-11-23T11:00:00Z",
}

process_rounds = extend_schema(
    tags=["processes"],
    summary="Earlier rounds of a process's rework loops",
    description=(
        'Every task execution a rework outcome ran again (`"outcomes": {"rework": '
        '{"goto": STAGE}}`), as it was when the process was sent back: round, execution '
        "number, state, result, who decided. The current execution of each task is in the "
        "process's `tasks`."
    ),
    responses={200: ser.TaskRoundSerializer(many=True), **s.READ_ERRORS},
    examples=[s.response_example("rounds", s.page_of(ROUND_EXAMPLE), "200")],
)

cancel_process = extend_schema(
    tags=["processes"],
    summary="Cancel a process",
    description=(
        "Cancels every open task, then runs compensation handlers. Needs `operate_process`. "
        "A process that is already completed or cancelled → 409."
    ),
    parameters=[s.IDEMPOTENCY_KEY],
    request=ser.ProcessCancelSerializer,
    responses={200: ser.ProcessDetailSerializer, **s.WRITE_ERRORS},
    examples=[s.request_example("cancel", {"reason": "customer called"})],
)

correct_variables = extend_schema(
    tags=["processes"],
    summary="Correct a process's variables",
    description=(
        "Sets (`set`: variable path → value) and removes (`unset`) variables of a running "
        "or failed process, with a `reason`. Needs `correct_variables` on the definition; "
        "recorded as one `variables_changed` event with each value before and after. "
        "Each value is checked against the type the definition declares at its path (its "
        'input, a task\'s result or form) and converted (a decimal with 2 places: `"410"` → '
        '`"410.00"`); a bad one → 400 with `fields` keyed `set.<path>`. '
        "Nothing would change → 400; a completed or cancelled process → 409."
    ),
    parameters=[s.IDEMPOTENCY_KEY],
    request=ser.VariablesCorrectionSerializer,
    responses={200: ser.ProcessDetailSerializer, **s.WRITE_ERRORS},
    examples=[
        s.request_example(
            "correct", {"set": {"bonus.amount": "410.00"}, "reason": "bonus system sent 41.00"}
        )
    ],
)
