"""The events-out API's serializers: small, and they never save (``events_out`` does)."""

from __future__ import annotations

from rest_framework import serializers

from integrations.models import DeliveryStatus, EventDelivery, EventSubscription, SubscriptionKind
from integrations.models.events_out import STREAM_NAME_HELP


class SubscriptionSerializer(serializers.ModelSerializer):
    """A subscription as the API shows it: never its secret."""

    stream_key = serializers.SerializerMethodField(
        help_text="Redis stream: the key events are XADDed to (`flowdesk:events:<stream>`)."
    )
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
            "stream_key",
            "event_types",
            "max_attempts",
            "active",
            "undelivered",
            "dead",
        ]

    def get_stream_key(self, obj) -> str | None:
        return obj.stream_key if obj.kind == SubscriptionKind.REDIS_STREAM and obj.stream else None


class SubscriptionCreatedSerializer(SubscriptionSerializer):
    """The answer to a creation: the subscription and, this once, its signing secret."""

    secret = serializers.CharField(
        help_text="The HMAC-SHA256 key of `X-Flowdesk-Signature`: shown only in this answer."
    )

    class Meta(SubscriptionSerializer.Meta):
        fields = [*SubscriptionSerializer.Meta.fields, "secret"]


class SubscriptionInputSerializer(serializers.Serializer):
    """What a client may set. Field types here; what a subscription must be (a visible
    definition, a public webhook target, a stream name, known event types) is checked by
    ``events_out.save_subscription``, the admin's rule too."""

    name = serializers.CharField(max_length=100)
    definition_key = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(SubscriptionKind.choices, default=SubscriptionKind.WEBHOOK)
    url = serializers.CharField(
        max_length=500, required=False, allow_blank=True, help_text="Webhook: POST here."
    )
    secret = serializers.CharField(
        min_length=16,
        max_length=200,
        required=False,
        write_only=True,
        help_text="Webhook: the signing key (16-200 characters); generated when left out.",
    )
    stream = serializers.CharField(
        max_length=100, required=False, allow_blank=True, help_text=STREAM_NAME_HELP
    )
    event_types = serializers.ListField(
        child=serializers.CharField(max_length=40),
        required=False,
        max_length=100,
        help_text="Event types to deliver (empty: every event).",
    )
    max_attempts = serializers.IntegerField(min_value=1, max_value=100, required=False)
    active = serializers.BooleanField(required=False)


class AttemptSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    duration_ms = serializers.IntegerField(allow_null=True, help_text="How long it took.")
    ok = serializers.BooleanField()
    status_code = serializers.IntegerField(allow_null=True, help_text="The receiver's status.")
    error = serializers.CharField(
        allow_blank=True,
        help_text="A short class: `timeout`, `connection refused`, `HTTP 500`, `refused target: "
        "loopback address`, ... The receiver's answer is never kept nor shown.",
    )


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
