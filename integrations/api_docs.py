"""OpenAPI of the events-out API (``integrations.api``): named ``extend_schema`` decorators, so
a view's body shows only its logic (the shape of ``processes/api/docs/``)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema

from integrations import api_serializers as ser
from integrations.models import DeliveryStatus

TAGS = ["events out"]


def _example(status: int, code: str, message: str, fields=None) -> OpenApiExample:
    error = {"code": code, "message": message, "fields": fields or {}}
    return OpenApiExample(
        f"{status} {code}", value={"error": error}, response_only=True, status_codes=[str(status)]
    )


def error(description: str, *examples: OpenApiExample) -> OpenApiResponse:
    """The API's shared error shape (the ``Error`` component of ``processes.api``)."""
    return OpenApiResponse(
        {"$ref": "#/components/schemas/Error"}, description=description, examples=list(examples)
    )


BAD_REQUEST = error(
    "Invalid input: `fields` names each field with its messages.",
    _example(
        400,
        "invalid",
        "the subscription is not valid",
        {
            "url": [
                "169.254.169.254 is a link-local address: webhooks may only post to public "
                "addresses (FLOWDESK_WEBHOOK_ALLOW_HOSTS opens named hosts)"
            ]
        },
    ),
)
UNAUTHORIZED = error("No or invalid credentials.")
FORBIDDEN = error(
    "The caller lacks the permission for this action.",
    _example(403, "forbidden", "you may not add event subscriptions"),
)
NOT_FOUND = error(
    "Unknown, or not visible to the caller (the two are not told apart).",
    _example(404, "not_found", "subscription 7 not found"),
)
READ_ERRORS = {400: BAD_REQUEST, 401: UNAUTHORIZED, 403: FORBIDDEN, 404: NOT_FOUND}
BODY_ERRORS = {
    **READ_ERRORS,
    413: error("The body is over 1 MB."),
    415: error("A body that is not JSON."),
}
SUBSCRIPTION_RIGHTS = (
    "Creating, changing or deleting a subscription needs the model permission "
    "(`integrations.add_eventsubscription`, `change_...`, `delete_...`) and the right to see "
    "the definition's processes (`view_process`, `operate_process` or `correct_variables` on "
    "it): a subscription sends every event of them, amounts and names included. A definition "
    "that does not exist and one the caller may not see get the same 400. A webhook URL must "
    "reach public addresses only (no loopback, private, link-local, shared, multicast or "
    "reserved address, checked again at every delivery); a Redis stream is "
    "`flowdesk:events:<stream>`."
)

list_subscriptions = extend_schema(
    tags=TAGS,
    summary="List event subscriptions",
    description="Webhook and Redis-stream subscriptions of the definitions the caller may "
    "see, with their undelivered and dead-letter counts (secrets are never shown).",
    responses={200: ser.SubscriptionSerializer(many=True), **READ_ERRORS},
)

create_subscription = extend_schema(
    tags=TAGS,
    summary="Subscribe to a definition's events",
    description=SUBSCRIPTION_RIGHTS + " The answer shows the signing `secret` this once.",
    request=ser.SubscriptionInputSerializer,
    responses={
        201: ser.SubscriptionCreatedSerializer,
        **BODY_ERRORS,
        409: error(
            "Another request took the name at the same moment.",
            _example(409, "conflict", "a subscription named 'shop-monitor' exists"),
        ),
    },
    examples=[
        OpenApiExample(
            "webhook",
            value={
                "name": "shop-monitor",
                "definition_key": "pizza",
                "url": "https://hooks.example.com/flowdesk",
                "event_types": ["process_started", "process_completed"],
            },
            request_only=True,
        ),
        OpenApiExample(
            "Redis stream",
            value={
                "name": "bus",
                "definition_key": "pizza",
                "kind": "redis_stream",
                "stream": "orders",
            },
            request_only=True,
        ),
    ],
)

subscription_detail = extend_schema(
    tags=TAGS,
    summary="One event subscription",
    responses={200: ser.SubscriptionSerializer, **READ_ERRORS},
)

change_subscription = extend_schema(
    tags=TAGS,
    summary="Change an event subscription",
    description="Only the fields sent change. " + SUBSCRIPTION_RIGHTS,
    request=ser.SubscriptionInputSerializer(partial=True),
    responses={
        200: ser.SubscriptionSerializer,
        **BODY_ERRORS,
        409: error("Another request took the name at the same moment."),
    },
    examples=[OpenApiExample("pause", value={"active": False}, request_only=True)],
)

delete_subscription = extend_schema(
    tags=TAGS,
    summary="Delete an event subscription",
    description="With its deliveries and their log. Needs "
    "`integrations.delete_eventsubscription` and the right to see the definition's processes.",
    responses={204: OpenApiResponse(description="Deleted."), **READ_ERRORS},
)

list_deliveries = extend_schema(
    tags=TAGS,
    summary="The delivery log of one subscription",
    description="Newest event first, each with its attempts (status code, duration and a short "
    "error class; never what the receiver answered); `?status=dead` lists the dead letters.",
    parameters=[
        OpenApiParameter("status", OpenApiTypes.STR, enum=DeliveryStatus.values, required=False)
    ],
    responses={200: ser.DeliverySerializer(many=True), **READ_ERRORS},
)

replay_delivery = extend_schema(
    tags=TAGS,
    summary="Replay a dead letter",
    description="Gives a dead delivery another round of attempts and queues it at once; "
    "the events of the same process behind it follow in order. Needs `operate_process`.",
    request=None,
    responses={
        202: OpenApiResponse(ser.DeliverySerializer, description="Queued again."),
        **BODY_ERRORS,
        409: error(
            "The delivery is not a dead letter (pending, sending or delivered).",
            _example(409, "conflict", "delivery 12 is delivered, not a dead letter"),
        ),
    },
)
