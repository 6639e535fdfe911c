from django.contrib import admin, messages
from django.utils import timezone

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
    WatchdogState,
)


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
    list_display = ["created_at", "task_name", "process_id", "error", "note"]
    search_fields = ["key", "task_name", "error"]
    inlines = [SmsMessageInline]


@admin.register(SmsMessage)
class SmsMessageAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "phone",
        "status",
        "attempts",
        "sent_at",
        "last_error",
        "folded_into",
    ]
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


@admin.register(WatchdogState)
class WatchdogStateAdmin(ReadOnlyAdmin):
    """What ``manage.py watchdog`` saw last (read-only: the watchdog writes it)."""

    list_display = ["name", "down_since", "alerted_at", "reasons", "checked_at", "outages"]
