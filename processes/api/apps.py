from django.apps import AppConfig


class FlowdeskApiConfig(AppConfig):
    """The REST API for external systems (serializers, views, idempotency records)."""

    name = "processes.api"
    label = "flowdesk_api"
    verbose_name = "Flowdesk API"
    default_auto_field = "django.db.models.BigAutoField"
