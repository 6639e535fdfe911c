from django.contrib import admin, messages
from django.db.models import OuterRef, Subquery
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from integrations import alerts
from integrations.models import (
    AlertRecipient,
    Incident,
    SimulatorCall,
    SimulatorFault,
    SimulatorNotice,
    SimulatorPayout,
    SmsMessage,
    SmsStatus,
)
from processes.models import ProcessInstance, TaskInstance, TaskState


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(AlertRecipient)
class AlertRecipientAdmin(admin.ModelAdmin):
    list_display = ["user", "phone", "active"]
    list_filter = ["active"]
    search_fields = ["user__username", "phone"]
    autocomplete_fields = ["user"]


class SmsMessageInline(admin.TabularInline):
    model = SmsMessage
    extra = 0
    can_delete = False
    fields = ["phone", "status", "attempts", "sent_at", "last_error"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Incident)
class IncidentAdmin(ReadOnlyAdmin):
    """Every incident alerted, with what it is about and whether it is still open; the process
    link leads to its incident banner (retry, skip, set variables). Incidents are kept: no Delete."""

    list_display = [
        "created_at",
        "process_link",
        "definition",
        "task_name",
        "short_error",
        "status",
        "note",
    ]
    search_fields = ["key", "task_name", "error"]
    inlines = [SmsMessageInline]

    def has_delete_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        process = ProcessInstance.objects.filter(pk=OuterRef("process_id"))
        task = TaskInstance.objects.filter(pk=OuterRef("task_id"))
        return (
            super()
            .get_queryset(request)
            .annotate(
                business_key=Subquery(process.values("business_key")[:1]),
                definition_key=Subquery(process.values("definition_key")[:1]),
                task_state=Subquery(task.values("state")[:1]),
                task_execution=Subquery(task.values("execution")[:1]),
            )
        )

    @admin.display(description="process", ordering="business_key")
    def process_link(self, obj):
        if not obj.process_id:
            return "(worker cluster)"
        url = reverse("admin:processes_processinstance_change", args=[obj.process_id])
        return format_html('<a href="{}">{}</a>', url, obj.business_key or obj.process_id)

    @admin.display(description="definition", ordering="definition_key")
    def definition(self, obj):
        return obj.definition_key or "—"

    @admin.display(description="error")
    def short_error(self, obj):
        text = obj.error or ""
        return text if len(text) <= 140 else text[:139] + "…"

    @admin.display(description="status")
    def status(self, obj):
        """Open while that execution of the task is still failed; resolved once it was retried,
        skipped or replayed (or the process was cancelled)."""
        if not obj.process_id or obj.task_id is None:
            return "—"
        still = obj.task_state == TaskState.FAILED and obj.task_execution == obj.execution
        if still:
            return format_html('<strong style="color:#cf222e">{}</strong>', "open")
        return format_html('<span style="color:#1a7f37">{}</span>', "resolved")


@admin.register(SmsMessage)
class SmsMessageAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "phone", "status", "attempts", "sent_at", "last_error"]
    list_filter = ["status"]
    search_fields = ["phone", "body"]
    actions = ["retry_now"]

    @admin.action(description="Send the selected unsent SMS again now")
    def retry_now(self, request, queryset):
        count = queryset.filter(status__in=[SmsStatus.PENDING, SmsStatus.FAILED]).update(
            status=SmsStatus.PENDING, next_attempt_at=timezone.now()
        )
        outcome = alerts.retry_pending()
        self.message_user(request, f"{count} SMS queued again: {outcome or 'nothing due'}")


@admin.register(SimulatorFault)
class SimulatorFaultAdmin(admin.ModelAdmin):
    list_display = ["system", "down", "latency_ms", "error_rate", "updated_at"]
    list_editable = ["down", "latency_ms", "error_rate"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        self.message_user(request, f"{obj.system} simulator faults updated", messages.SUCCESS)


@admin.register(SimulatorPayout)
class SimulatorPayoutAdmin(ReadOnlyAdmin):
    list_display = ["pk", "employee_id", "period", "salary_base", "bonus", "total", "created_at"]
    search_fields = ["employee_id", "reference"]


@admin.register(SimulatorNotice)
class SimulatorNoticeAdmin(ReadOnlyAdmin):
    list_display = ["employee_id", "period", "decided_by", "created_at"]


@admin.register(SimulatorCall)
class SimulatorCallAdmin(ReadOnlyAdmin):
    list_display = ["started_at", "system", "endpoint", "status_code", "replayed", "finished_at"]
    list_filter = ["system", "endpoint", "status_code", "replayed"]
    search_fields = ["idempotency_key"]
