"""Messages other systems sent (``POST /api/messages/``): what each reached, what waits in the
buffer. Read-only; a message names no definition, so only superusers see the list."""

from __future__ import annotations

from django.contrib import admin

from processes import authority
from processes.admin.base import NoWrites


class ReceivedMessageAdmin(NoWrites, admin.ModelAdmin):
    list_display = (
        "name",
        "correlation_key",
        "message_id",
        "received_at",
        "occurred_at",
        "buffer_until",
        "delivered_at",
    )
    list_filter = ("name",)
    search_fields = ("correlation_key", "message_id")
    ordering = ("-received_at",)
    actions = None
    fields = (*list_display, "data", "reached")
    readonly_fields = fields

    def has_module_permission(self, request):
        return authority.is_superuser(request.user)

    def has_view_permission(self, request, obj=None):
        return authority.is_superuser(request.user)
