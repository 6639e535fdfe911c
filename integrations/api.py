"""The events-out API: subscriptions (list, create, read, change, delete), their delivery log
and the dead letters' replay.

An adapter of its own (it may not import ``processes.api``): plain DRF views with the project's
settings (token or session auth, the one error shape through ``EXCEPTION_HANDLER``), JSON only
through the engine API's own negotiation (``processes.negotiation``); their OpenAPI description
is ``integrations.api_docs``. Who sees what is the definition grants
of ``processes.authority``: a subscription is visible to whoever may see its definition's
processes; creating, changing or deleting one also needs the model permission
(``events_out.save_subscription``: the admin's rule too); a replay needs ``operate_process``.
"""

from __future__ import annotations

from django.db.models import Count, Q
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from integrations import api_docs as docs
from integrations import events_out
from integrations.api_serializers import (
    DeliveryQuerySerializer,
    DeliverySerializer,
    SubscriptionCreatedSerializer,
    SubscriptionInputSerializer,
    SubscriptionSerializer,
)
from integrations.models import DeliveryStatus, EventDelivery, EventSubscription
from processes import authority
from processes.errors import Forbidden, NotFound
from processes.negotiation import JSONOnlyNegotiation

MAX_ID = 2**63 - 1  # a bigger id is no row (and would overflow the database's integer)


class _View(GenericAPIView):
    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JSONOnlyNegotiation
    metadata_class = None

    def visible_subscription(self, pk) -> EventSubscription:
        subscription = EventSubscription.objects.filter(pk=pk).first() if pk <= MAX_ID else None
        if subscription is None or not events_out.may_see(
            self.request.user, subscription.definition_key
        ):
            raise NotFound(f"subscription {pk} not found")
        return subscription


def _counted(queryset):
    return queryset.annotate(
        undelivered=Count("deliveries", filter=~Q(deliveries__status=DeliveryStatus.DELIVERED)),
        dead=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.DEAD)),
    )


class SubscriptionListView(_View):
    serializer_class = SubscriptionSerializer
    queryset = EventSubscription.objects.none()

    @docs.list_subscriptions
    def get(self, request):
        queryset = EventSubscription.objects.order_by("definition_key", "name")
        page = self.paginate_queryset(_counted(events_out.visible(queryset, request.user)))
        return self.get_paginated_response(SubscriptionSerializer(page, many=True).data)

    @docs.create_subscription
    def post(self, request):
        given = SubscriptionInputSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        subscription = events_out.save_subscription(
            user=request.user, subscription=None, changes=given.validated_data
        )
        subscription = _counted(EventSubscription.objects.filter(pk=subscription.pk)).get()
        return Response(
            SubscriptionCreatedSerializer(subscription).data,
            status=201,
            headers={"Location": f"/api/subscriptions/{subscription.pk}/"},
        )


class SubscriptionDetailView(_View):
    serializer_class = SubscriptionSerializer
    queryset = EventSubscription.objects.none()

    def _answer(self, pk):
        return SubscriptionSerializer(_counted(EventSubscription.objects.filter(pk=pk)).get()).data

    @docs.subscription_detail
    def get(self, request, pk):
        return Response(self._answer(self.visible_subscription(pk).pk))

    @docs.change_subscription
    def patch(self, request, pk):
        subscription = self.visible_subscription(pk)
        given = SubscriptionInputSerializer(data=request.data, partial=True)
        given.is_valid(raise_exception=True)
        events_out.save_subscription(
            user=request.user, subscription=subscription, changes=given.validated_data
        )
        return Response(self._answer(subscription.pk))

    @docs.delete_subscription
    def delete(self, request, pk):
        subscription = self.visible_subscription(pk)
        events_out.delete_subscription(user=request.user, subscription=subscription)
        return Response(status=204)


class DeliveryListView(_View):
    serializer_class = DeliverySerializer
    queryset = EventDelivery.objects.none()

    @docs.list_deliveries
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

    @docs.replay_delivery
    def post(self, request, pk):
        delivery = None
        if pk <= MAX_ID:
            delivery = EventDelivery.objects.select_related("subscription").filter(pk=pk).first()
        key = delivery.subscription.definition_key if delivery else None
        if delivery is None or not events_out.may_see(request.user, key):
            raise NotFound(f"delivery {pk} not found")
        if not authority.has_definition_perm(request.user, authority.OPERATE, key):
            raise Forbidden(f"you may not operate processes of {key!r}")
        delivery = events_out.replay(delivery.pk)
        return Response(DeliverySerializer(delivery).data, status=202)
