from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models import OuterRef, Subquery
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from integrations import alerts, events_out
from integrations.models import (
    AlertRecipient,
    DeliveryAttempt,
    DeliveryStatus,
    EventDelivery,
    EventSubscription,
    Incident,
    SimulatorCall,
    SimulatorFault,
    SimulatorNotice,
    SimulatorPayout,
    SmsMessage,
    SubscriptionKind,
    WatchdogState,
)
from processes import authority
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
        """A failed SMS gets another round of attempts (a replay, as a dead event delivery's),
        a pending one is due now: a worker sends them (``integrations.outbox``)."""
        count = alerts.SMS.send_now(queryset.values_list("pk", flat=True))
        self.message_user(request, f"{count} SMS queued again")


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


# --- events out -----------------------------------------------------------------------------------


@admin.register(EventSubscription)
class EventSubscriptionAdmin(admin.ModelAdmin):
    """Subscriptions of the definitions the person may see; subscribing to a definition needs
    the right to see its processes (``events_out.definition_refusal``, the API's rule too)."""

    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ["name", "definition_key", "kind", "target", "active", "undelivered", "dead"]
    list_filter = ["kind", "active", "definition_key"]
    search_fields = ["name", "definition_key", "url", "stream"]
    fields = [
        "name",
        "definition_key",
        "kind",
        "url",
        "secret",
        "stream",
        "event_types",
        "max_attempts",
        "active",
    ]

    def get_queryset(self, request):
        return events_out.visible(super().get_queryset(request), request.user)

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)

        def clean_definition_key(self):
            key = self.cleaned_data["definition_key"]
            refusal = events_out.definition_refusal(request.user, key)
            if refusal is not None:
                raise ValidationError(refusal)
            return key

        form.clean_definition_key = clean_definition_key
        return form

    @admin.display(description="Delivers to")
    def target(self, obj):
        if obj.kind == SubscriptionKind.WEBHOOK:
            return obj.url
        try:
            return f"stream {obj.stream_key}"
        except ValueError:
            return f"stream {obj.stream!r} (not a valid name)"

    @admin.display(description="Undelivered")
    def undelivered(self, obj):
        return obj.deliveries.exclude(status=DeliveryStatus.DELIVERED).count()

    @admin.display(description="Dead letters")
    def dead(self, obj):
        return obj.deliveries.filter(status=DeliveryStatus.DEAD).count()


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = ["number", "started_at", "duration_ms", "ok", "status_code", "error"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(EventDelivery)
class EventDeliveryAdmin(ReadOnlyAdmin):
    """The outbox and its log, of the definitions the person may see; a dead letter gets a
    replay button (and a list action) for whoever may operate its definition's processes."""

    change_form_template = "admin/integrations/eventdelivery/change_form.html"
    list_display = [
        "event_id",
        "event_type",
        "process_id",
        "subscription",
        "status",
        "attempts",
        "next_attempt_at",
        "delivered_at",
        "last_error",
    ]
    # RelatedOnly: the filter lists the subscriptions of visible deliveries, not every name
    list_filter = ["status", ("subscription", admin.RelatedOnlyFieldListFilter), "event_type"]
    search_fields = ["=process_id", "=event_id"]
    list_select_related = ["subscription"]
    inlines = [DeliveryAttemptInline]
    actions = ["replay_selected"]

    def get_queryset(self, request):
        return events_out.visible(
            super().get_queryset(request), request.user, "subscription__definition_key"
        )

    def get_urls(self):
        view = self.admin_site.admin_view(require_POST(self.replay_view))
        return [
            path("<int:pk>/replay/", view, name="integrations_eventdelivery_replay")
        ] + super().get_urls()

    def _can_replay(self, request, delivery=None) -> bool:
        """The model permission, and (for one delivery) ``operate_process`` on its definition,
        as in the API."""
        if not request.user.has_perm("integrations.change_eventdelivery"):
            return False
        return delivery is None or authority.has_definition_perm(
            request.user, authority.OPERATE, delivery.subscription.definition_key
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        delivery = self.get_object(request, object_id)
        can_replay = delivery is not None and self._can_replay(request, delivery)
        extra_context = {**(extra_context or {}), "can_replay": can_replay}
        return super().change_view(request, object_id, form_url, extra_context)

    def replay_view(self, request, pk):
        delivery = get_object_or_404(self.get_queryset(request), pk=pk)
        if not self._can_replay(request, delivery):
            raise PermissionDenied
        self._replay(request, [delivery])
        return redirect(reverse("admin:integrations_eventdelivery_change", args=[pk]))

    @admin.action(description="Replay the selected dead letters", permissions=["replay"])
    def replay_selected(self, request, queryset):
        self._replay(request, list(queryset.select_related("subscription")))

    def has_replay_permission(self, request):
        return self._can_replay(request)

    def _replay(self, request, deliveries):
        from processes.errors import EngineError

        done = 0
        for delivery in deliveries:
            if not self._can_replay(request, delivery):
                key = delivery.subscription.definition_key
                self.message_user(
                    request,
                    f"delivery {delivery.pk}: you may not operate processes of {key!r}",
                    messages.WARNING,
                )
                continue
            try:
                events_out.replay(delivery.pk)
                done += 1
            except EngineError as exc:
                self.message_user(request, str(exc), messages.WARNING)
        if done:
            self.message_user(request, f"{done} dead letter(s) queued again", messages.SUCCESS)


@admin.register(WatchdogState)
class WatchdogStateAdmin(ReadOnlyAdmin):
    """What ``manage.py watchdog`` saw last (read-only: the watchdog writes it)."""

    list_display = ["name", "down_since", "alerted_at", "reasons", "checked_at", "outages"]
