"""The audit log. Append-only: nobody adds, changes or deletes an event here, superusers
included."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse

from processes.admin import widgets
from processes.admin.base import ReadOnlyAdmin
from processes.admin.filters import EstimatedCountPaginator


class ProcessEventAdmin(ReadOnlyAdmin):
    list_display = ("process_link", "seq", "type", "task_name", "actor", "created_at")
    list_filter = ("type", "actor_type")
    list_select_related = ("process",)
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    ordering = ("-id",)
    actions = None
    fields = (
        "process_link",
        "seq",
        "type",
        "task_name",
        "actor",
        "actor_user",
        "created_at",
        "occurred_at",
        "hash",
        "data_pretty",
    )
    readonly_fields = fields
    key_lookup = "process__definition_key"

    def get_search_results(self, request, queryset, search_term):
        return queryset, False

    @admin.display(description="process")
    def process_link(self, obj):
        url = reverse("admin:processes_processinstance_change", args=[obj.process_id])
        return widgets.link(url, obj.process)

    @admin.display(description="actor")
    def actor(self, obj):
        return f"{obj.actor_display} ({obj.actor_type})"

    @admin.display(description="data")
    def data_pretty(self, obj):
        return widgets.json_block(obj.data)
