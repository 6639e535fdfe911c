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
        "is started. Needs `start_process` on the definition. `Location` names the instance."
    ),
    parameters=[s.IDEMPOTENCY_KEY],
    request=ser.ProcessStartSerializer,
    responses={
        201: OpenApiResponse(ser.ProcessDetailSerializer, description="Started."),
        200: OpenApiResponse(
            ser.ProcessDetailSerializer, description="Already active: the same instance."
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
        "Nothing would change → 400; a completed or cancelled process → 409."
    ),
    parameters=[s.IDEMPOTENCY_KEY],
    request=ser.VariablesCorrectionSerializer,
    responses={200: ser.ProcessDetailSerializer, **s.WRITE_ERRORS},
    examples=[
        s.request_example(
            "correct", {"set": {"bonus.amount": 410.0}, "reason": "bonus system sent 41.00"}
        )
    ],
)
