"""OpenAPI pieces shared by the API's docs (``processes/api/docs/``): error responses, the
Idempotency-Key header, examples and the helpers that build them."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse

from processes.api.serializers import ErrorSerializer

PROCESS_ID = "3f2b8c1e-6a4d-4a8e-9a55-0c1d2e3f4a5b"

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description=(
        "Any unique string (1-255 chars). A retried POST with the same key (same caller, method, "
        "path and body) gets the first answer again, with header `Idempotent-Replayed: true`. "
        "The same key with another request → 422; while the first is still running → 409. "
        "Keys are kept 24 hours."
    ),
)


def request_example(name: str, value) -> OpenApiExample:
    return OpenApiExample(name, value=value, request_only=True)


def response_example(name: str, value, *status_codes: str) -> OpenApiExample:
    """An answer's example: for ``status_codes`` only, or for every success without them."""
    return OpenApiExample(
        name, value=value, response_only=True, status_codes=list(status_codes) or None
    )


def error_example(status: int, code: str, message: str, fields=None, **extra) -> OpenApiExample:
    error = {"code": code, "message": message, "fields": fields or {}, **extra}
    return response_example(f"{status} {code}", {"error": error}, str(status))


def error(status: int, description: str, *examples: OpenApiExample) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description, examples=list(examples))


BAD_REQUEST = error(
    400,
    "Invalid input: `fields` maps each field path to its messages; or a JSON parse error.",
    error_example(
        400, "invalid", "the request is not valid", {"business_key": ["This field is required."]}
    ),
    error_example(400, "parse_error", "JSON parse error - Expecting value: line 1 column 1"),
)
UNAUTHORIZED = error(
    401,
    "No or invalid credentials (`Authorization: Token <key>` or a session).",
    error_example(401, "not_authenticated", "Authentication credentials were not provided."),
)
FORBIDDEN = error(
    403,
    "Authenticated, the object is visible, but the caller lacks the permission for this action.",
    error_example(403, "forbidden", "you may not start processes of 'pizza'"),
)
NOT_FOUND = error(
    404,
    "Unknown, or not visible to the caller (the two are not told apart).",
    error_example(404, "not_found", "process 3f2b8c1e-6a4d-4a8e-9a55-0c1d2e3f4a5b not found"),
)
CONFLICT = error(
    409,
    "The request does not fit the current state (completing a pending task, deciding a closed "
    "one, cancelling a completed process), or its Idempotency-Key is still in progress.",
    error_example(409, "conflict", "cannot complete task 'confirm_delivery': it is pending"),
)
TOO_LARGE = error(
    413,
    "The body is over 1 MB.",
    error_example(413, "too_large", "the request body is over 1048576 bytes"),
)
UNSUPPORTED = error(
    415,
    "The body is not `application/json`.",
    error_example(415, "unsupported_media_type", 'Unsupported media type "text/plain" in request.'),
)
LOCKED_OUT = error(
    429,
    "Too many failed logins for this username from this address: locked for a while "
    "(`Retry-After` says how long). A success before the limit resets the count.",
    error_example(
        429,
        "too_many_attempts",
        "Too many failed logins for this account from your address: try again in 15 minutes, "
        "or ask an administrator to unlock it.",
    ),
)
IDEMPOTENCY_MISMATCH = error(
    422,
    "The Idempotency-Key was already used for a different request.",
    error_example(
        422,
        "idempotency_key_reused",
        "this Idempotency-Key was used for a different request",
        {"Idempotency-Key": ["already used with another method, path or body"]},
    ),
)

READ_ERRORS = {400: BAD_REQUEST, 401: UNAUTHORIZED, 403: FORBIDDEN, 404: NOT_FOUND}
WRITE_ERRORS = {
    **READ_ERRORS,
    409: CONFLICT,
    413: TOO_LARGE,
    415: UNSUPPORTED,
    422: IDEMPOTENCY_MISMATCH,
}

PIZZA_TEMPLATE = {
    "workflow_name": "Deliver Pizza",
    "component_name": "ITALIAN",
    "stages": [
        {"stage_name": "START", "stage_order": 0.0},
        {
            "stage_name": "ORDER",
            "stage_order": 1.0,
            "tasks": [
                {
                    "task_name": "confirm_order",
                    "parent_task": [],
                    "task_queue": "confirm_order_queue",
                    "task_type": "SERVICE",
                    "business_status": "ORDER CONFIRMED",
                }
            ],
        },
    ],
}

TASK_EXAMPLE = {
    "id": 12,
    "stage": "ORDER",
    "name": "confirm_order",
    "type": "SERVICE",
    "state": "scheduled",
    "attempts": 0,
    "role": "",
    "assignee": None,
    "claimed_by": None,
    "task_queue": "confirm_order_queue",
    "result": None,
    "error": "",
    "due": None,
    "scheduled_at": "2026-11-23T10:00:00Z",
    "finished_at": None,
}

PROCESS_EXAMPLE = {
    "id": PROCESS_ID,
    "url": f"/api/processes/{PROCESS_ID}/",
    "definition": "pizza",
    "version": 1,
    "business_key": "ORDER-001",
    "state": "running",
    "business_status": "",
    "current_stage": "ORDER",
    "created_at": "2026-11-23T10:00:00Z",
    "updated_at": "2026-11-23T10:00:00Z",
    "completed_at": None,
}

PROCESS_DETAIL_EXAMPLE = {
    **PROCESS_EXAMPLE,
    "started_by": "shop-frontend",
    "variables": {"customer": "Ada"},
    "tasks": [TASK_EXAMPLE],
}

START_TASK_EXAMPLE = {
    "business_ref_no": "ORDER-001",
    "component_name": "ITALIAN",
    "event_name": "StartTask",
    "stage_name": "ORDER",
    "task_name": "confirm_order",
    "task_type": "SERVICE",
    "task_queue": "confirm_order_queue",
    "task_id": 12,
    "process_id": PROCESS_ID,
    "scheduled_at": "2026-11-23T10:00:00Z",
}


def page_of(item: dict) -> dict:
    return {"count": 1, "next": None, "previous": None, "results": [item]}
