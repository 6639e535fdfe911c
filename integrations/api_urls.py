"""The events-out API's paths, mounted under ``/api/`` before the processes API's."""

from django.urls import path

from integrations import api

urlpatterns = [
    path("subscriptions/", api.SubscriptionListView.as_view(), name="api-subscriptions"),
    path("subscriptions/<int:pk>/", api.SubscriptionDetailView.as_view(), name="api-subscription"),
    path(
        "subscriptions/<int:pk>/deliveries/",
        api.DeliveryListView.as_view(),
        name="api-subscription-deliveries",
    ),
    path(
        "deliveries/<int:pk>/replay/",
        api.DeliveryReplayView.as_view(),
        name="api-delivery-replay",
    ),
]
