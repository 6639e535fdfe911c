"""The events-out API: subscriptions, their delivery log and the dead letters' replay.

An adapter of its own (it may not import ``processes.api``): plain DRF views with the project's
settings (token or session auth, the one error shape through ``EXCEPTION_HANDLER``), JSON only.
Who sees what is the definition grants of ``processes.authority``: a subscription is visible to
whoever may see its definition's processes; a replay needs ``operate_process``.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from integrations import events_out
from integrations.models import DeliveryStatus, EventDelivery, EventSubscription
from processes import authority
from processes.errors import Forbidden, NotFound


class _JSONOnly(BaseContentNegotiation):
    def select_parser(self, request, parsers):
        for parser in parsers:
            if request.content_type.split(";")[0].strip().lower() == parser.media_type:
                return parser
        return None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def _error(description: str) -> OpenApiResponse:
    """The API's shared error shape (the ``Error`` component of ``processes.api``)."""
    return OpenApiResponse({"$ref": "#/components/schemas/Error"}, description=description)


READ_ERRORS = {
    400: _error("Invalid query parameter: `fields` names it."),
    401: _error("No or invalid credentials."),
    404: _error("Unknown, or not visible to the caller."),
}
WRITE_ERRORS = {
    **READ_ERRORS,
    403: _error("Visible, but the caller may not operate this definition's processes."),
    409: _error("The delivery is not a dead letter (pending, sending or delivered)."),
    413: _error("The body is over 1 MB."),
    415: _error("A body that is not JSON."),
}


class SubscriptionSerializer(serializers.ModelSerializer):
    undelivered = serializers.IntegerField(read_only=True)
    dead = serializers.IntegerField(read_only=True)

    class Meta:
        model = EventSubscription
        fields = [
            "id",
            "name",
            "definition_key",
            "kind",
            "url",
            "stream",
            "event_types",
            "max_attempts",
            "active",
            "undelivered",
            "dead",
        ]


class AttemptSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    ok = serializers.BooleanField()
    status_code = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_blank=True)


class DeliverySerializer(serializers.ModelSerializer):
    log = AttemptSerializer(many=True, read_only=True)

    class Meta:
        model = EventDelivery
        fields = [
            "id",
            "subscription",
            "event_id",
            "event_type",
            "process_id",
            "status",
            "attempts",
            "replays",
            "next_attempt_at",
            "delivered_at",
            "last_error",
            "log",
        ]


class DeliveryQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=DeliveryStatus.choices, required=False)


class _View(GenericAPIView):
    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = _JSONOnly
    metadata_class = None

    def visible_subscription(self, pk) -> EventSubscription:
        subscription = EventSubscription.objects.filter(pk=pk).first()
        if subscription is None or not authority.has_definition_perm(
            self.request.user, authority.SEE, subscription.definition_key
        ):
            raise NotFound(f"subscription {pk} not found")
        return subscription


def _counted(queryset):
    from django.db.models import Count, Q

    return queryset.annotate(
        undelivered=Count("deliveries", filter=~Q(deliveries__status=DeliveryStatus.DELIVERED)),
        dead=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.DEAD)),
    )


class SubscriptionListView(_View):
    serializer_class = SubscriptionSerializer
    queryset = EventSubscription.objects.none()

    @extend_schema(
        tags=["events out"],
        summary="List event subscriptions",
        description="Webhook and Redis-stream subscriptions of the definitions the caller may "
        "see, with their undelivered and dead-letter counts (secrets are never shown).",
        responses={200: SubscriptionSerializer(many=True), **READ_ERRORS},
    )
    def get(self, request):
        keys = authority.granted_keys(request.user, authority.SEE)
        queryset = EventSubscription.objects.order_by("definition_key", "name")
        if keys is not None:
            queryset = queryset.filter(definition_key__in=keys)
        page = self.paginate_queryset(_counted(queryset))
        return self.get_paginated_response(SubscriptionSerializer(page, many=True).data)


class DeliveryListView(_View):
    serializer_class = DeliverySerializer
    queryset = EventDelivery.objects.none()

    @extend_schema(
        tags=["events out"],
        summary="The delivery log of one subscription",
        description="Newest event first, each with its attempts; `?status=dead` lists the dead "
        "letters.",
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=DeliveryStatus.values, required=False)
        ],
        responses={200: DeliverySerializer(many=True), **READ_ERRORS},
    )
    def get(self, request, pk):
        query = DeliveryQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        subscription = self.visible_subscription(pk)
        queryset = subscription.deliveries.prefetch_related("log").order_by("-event_id")
        if "status" in query.validated_data:
            queryset = queryset.filter(status=query.validated_data["status"])
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(DeliverySerializer(page, many=True).data)


class DeliveryReplayView(_View):
    serializer_class = DeliverySerializer
    queryset = EventDelivery.objects.none()

    @extend_schema(
        tags=["events out"],
        summary="Replay a dead letter",
        description="Gives a dead delivery another round of attempts and queues it at once; "
        "the events of the same process behind it follow in order. Needs `operate_process`.",
        request=None,
        responses={
            202: OpenApiResponse(DeliverySerializer, description="Queued again."),
            **WRITE_ERRORS,
        },
    )
    def post(self, request, pk):
        delivery = EventDelivery.objects.select_related("subscription").filter(pk=pk).first()
        key = delivery.subscription.definition_key if delivery else None
        if delivery is None or not authority.has_definition_perm(request.user, authority.SEE, key):
            raise NotFound(f"delivery {pk} not found")
        if not authority.has_definition_perm(request.user, authority.OPERATE, key):
            raise Forbidden(f"you may not operate processes of {key!r}")
        delivery = events_out.replay(delivery.pk)
        return Response(DeliverySerializer(delivery).data, status=202)
