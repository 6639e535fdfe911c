"""The admin as control room: definitions, diagrams, instances, repairs, dashboard, exports.

Thin by rule: every change goes through an engine service with the admin user as actor, so it
lands in the process history; state fields are read-only everywhere; events can never be
changed or deleted here, not even by a superuser.
"""

from __future__ import annotations

import contextvars
import difflib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, IntegerField, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from processes import authority, dashboard, diagram, engine
from processes.admin_exports import export_limit, history_response
from processes.admin_forms import ActionForm, DefinitionForm, DiffForm, VariablesForm, pretty
from processes.admin_list import (
    BusinessStatusFilter,
    DefinitionKeyFilter,
    EstimatedCountPaginator,
    IncidentFilter,
    OverdueFilter,
    StartedBetweenFilter,
)
from processes.errors import EngineError
from processes.events import Actor
from processes.models import (
    ACTIVE_PROCESS_STATES,
    DefinitionStatus,
    ProcessDefinition,
    ProcessEvent,
    ProcessInstance,
    ProcessState,
    TaskInstance,
    TaskState,
)
from processes.spec import SpecValidationError

# The request being rendered, for read-only inline columns that depend on permissions.
_request: contextvars.ContextVar = contextvars.ContextVar("flowdesk_admin_request", default=None)

STATE_COLOURS = {
    "running": "#0969da",
    "failed": "#cf222e",
    "completed": "#1a7f37",
    "cancelled": "#6e7781",
    "draft": "#9a6700",
    "published": "#1a7f37",
    "retired": "#6e7781",
    "pending": "#8c959f",
    "scheduled": "#54aeff",
    "waiting": "#bf8700",
    "skipped": "#8c959f",
}


def badge(state: str, label: str | None = None):
    return format_html(
        '<span class="fd-badge fd-{}" style="background:{};color:#fff;padding:1px 7px;'
        'border-radius:9px;font-size:11px;white-space:nowrap">{}</span>',
        state,
        STATE_COLOURS.get(state, "#57606a"),
        label or state,
    )


def can_operate(request, definition_key: str) -> bool:
    """Operating (retry, skip, replay, cancel) needs ``operate_process`` on the definition."""
    return request is not None and authority.has_definition_perm(
        request.user, authority.OPERATE, definition_key
    )


class GrantedAdmin(admin.ModelAdmin):
    """Pages of rows that belong to a definition: what a person sees comes from their grants per
    definition key (``processes.authority``), never from ``is_staff`` or model permissions."""

    key_lookup = "definition_key"  # how a row names its definition key
    see_perms: tuple[str, ...] = authority.SEE

    def key_of(self, obj) -> str:
        value = obj
        for part in self.key_lookup.split("__"):
            value = getattr(value, part)
        return value

    def has_module_permission(self, request):
        return authority.has_any_grant(request.user, self.see_perms)

    def has_view_permission(self, request, obj=None):
        if obj is None:
            return authority.has_any_grant(request.user, self.see_perms)
        return authority.has_definition_perm(request.user, self.see_perms, self.key_of(obj))

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        keys = authority.granted_keys(request.user, self.see_perms) if request else None
        return qs if keys is None else qs.filter(**{f"{self.key_lookup}__in": keys})


def _uuid_or_none(value):
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


# --- definitions ----------------------------------------------------------------------------------


@admin.register(ProcessDefinition)
class ProcessDefinitionAdmin(GrantedAdmin):
    form = DefinitionForm
    list_display = (
        "key",
        "version",
        "name",
        "status_badge",
        "instance_count",
        "published_at",
        "created_at",
    )
    list_display_links = ("key", "version")
    list_filter = ("status", "key")
    search_fields = ("key", "name", "component_name")
    ordering = ("key", "-version")
    readonly_fields = (
        "key",
        "version",
        "name",
        "component_name",
        "status_badge",
        "created_at",
        "published_at",
        "created_by",
        "versions_table",
        "diagram",
        "spec_pretty",
    )
    change_form_template = "admin/processes/processdefinition/change_form.html"
    key_lookup = "key"
    see_perms = authority.ANY

    def get_queryset(self, request):
        counts = (
            ProcessInstance.objects.filter(definition=OuterRef("pk"))
            .order_by()
            .values("definition")
            .annotate(n=Count("*"))
            .values("n")
        )
        return (
            super()
            .get_queryset(request)
            .select_related("created_by")
            .annotate(n_instances=Coalesce(Subquery(counts, output_field=IntegerField()), 0))
        )

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": ["spec_text", "upload", "key_override"]})]
        info = [
            "key",
            "version",
            "name",
            "component_name",
            "status_badge",
            "created_at",
            "published_at",
            "created_by",
        ]
        if obj.status == DefinitionStatus.DRAFT:
            return [
                ("Version", {"fields": info}),
                ("Definition", {"fields": ["spec_text", "upload"]}),
                ("All versions", {"fields": ["versions_table"]}),
            ]
        return [
            ("Version", {"fields": info}),
            ("All versions", {"fields": ["versions_table"]}),
            ("Definition (immutable: edit it as a new version)", {"fields": ["spec_pretty"]}),
        ]

    def has_add_permission(self, request):
        return authority.may_create_keys(request.user) or authority.has_any_grant(
            request.user, authority.PUBLISH
        )

    def has_change_permission(self, request, obj=None):
        # A published or retired spec never changes: its page is read-only.
        if obj is None:
            return self.has_add_permission(request)
        return obj.status == DefinitionStatus.DRAFT and authority.may_publish(request.user, obj.key)

    def has_delete_permission(self, request, obj=None):
        return obj is not None and self.has_change_permission(request, obj)

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        source = request.GET.get("from")
        if source and source.isdigit():
            definition = ProcessDefinition.objects.filter(pk=source).first()
            if definition is not None:
                initial["spec_text"] = pretty(definition.spec)
        return initial

    # The engine stores definitions: the form only validates.
    def save_form(self, request, form, change):
        actor = Actor.for_user(request.user)
        publish = "_publish" in request.POST
        data = form.cleaned_data["data"]
        try:
            if change:
                definition = engine.definition_update_draft(
                    definition_id=form.instance.pk, data=data, actor=actor
                )
                if publish:
                    definition = engine.definition_publish(definition_id=definition.pk, actor=actor)
                request._fd_note = f"{definition} saved" + (" and published" if publish else "")
            else:
                definition, created = engine.definition_import(
                    data=data, actor=actor, publish=publish
                )
                request._fd_note = (
                    f"{definition} stored as {definition.status}"
                    if created
                    else f"identical to {definition} ({definition.status}): nothing new stored"
                )
        except SpecValidationError as exc:
            request._fd_error = "; ".join(str(e) for e in exc.errors)
            return form.instance if change else None
        except EngineError as exc:
            request._fd_error = exc.message
            return form.instance if change else None
        return definition

    def save_model(self, request, obj, form, change):
        pass  # stored by the engine in save_form

    def save_related(self, request, form, formsets, change):
        pass

    def log_addition(self, request, obj, message):
        if obj is not None:
            return super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        if obj is not None and obj.pk:
            return super().log_change(request, obj, message)

    def _after_save(self, request, obj):
        error = getattr(request, "_fd_error", None)
        if error:
            self.message_user(request, error, messages.ERROR)
            if obj is None or not obj.pk:
                return HttpResponseRedirect(reverse("admin:processes_processdefinition_add"))
        else:
            self.message_user(request, request._fd_note, messages.SUCCESS)
        return HttpResponseRedirect(
            reverse("admin:processes_processdefinition_change", args=[obj.pk])
        )

    def response_add(self, request, obj, post_url_continue=None):
        return self._after_save(request, obj)

    def response_change(self, request, obj):
        return self._after_save(request, obj)

    # Columns and read-only fields.

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return badge(obj.status)

    @admin.display(description="instances", ordering="n_instances")
    def instance_count(self, obj):
        n = getattr(obj, "n_instances", None)
        if n is None:
            n = ProcessInstance.objects.filter(definition=obj).count()
        url = reverse("admin:processes_processinstance_changelist")
        return format_html('<a href="{}?definition__id__exact={}">{}</a>', url, obj.pk, n)

    @admin.display(description="diagram")
    def diagram(self, obj):
        if obj is None or not obj.pk:
            return "–"
        try:
            svg = diagram.render_definition(obj)
        except Exception as exc:  # a stored spec that no longer parses still shows its page
            return f"cannot draw this definition: {exc}"
        return format_html('<div class="fd-diagram-wrap">{}</div>', mark_safe(svg))

    @admin.display(description="definition")
    def spec_pretty(self, obj):
        return format_html('<pre class="fd-json-view">{}</pre>', pretty(obj.spec))

    @admin.display(description="versions")
    def versions_table(self, obj):
        versions = self.get_queryset(None).filter(key=obj.key).order_by("-version")
        rows = []
        for v in versions:
            change = reverse("admin:processes_processdefinition_change", args=[v.pk])
            diff = reverse("admin:processes_processdefinition_diff", args=[v.pk])
            listing = reverse("admin:processes_processinstance_changelist")
            rows.append(
                format_html(
                    '<tr{}><td><a href="{}">v{}</a></td><td>{}</td><td>'
                    '<a href="{}?definition__id__exact={}">{}</a></td><td>{}</td>'
                    '<td><a href="{}">diff with previous</a></td></tr>',
                    mark_safe(' style="font-weight:bold"') if v.pk == obj.pk else "",
                    change,
                    v.version,
                    badge(v.status),
                    listing,
                    v.pk,
                    v.n_instances,
                    v.published_at or "",
                    diff,
                )
            )
        return format_html(
            '<table class="fd-versions"><thead><tr><th>version</th><th>status</th>'
            "<th>instances</th><th>published</th><th></th></tr></thead><tbody>{}</tbody></table>",
            mark_safe("".join(rows)),
        )

    # Extra pages.

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "<int:pk>/diagram.svg",
                wrap(self.diagram_view),
                name="processes_processdefinition_diagram",
            ),
            path("<int:pk>/diff/", wrap(self.diff_view), name="processes_processdefinition_diff"),
            path(
                "<int:pk>/publish/",
                wrap(self.publish_view),
                name="processes_processdefinition_publish",
            ),
            path(
                "<int:pk>/retire/",
                wrap(self.retire_view),
                name="processes_processdefinition_retire",
            ),
            path(
                "<int:pk>/download.json",
                wrap(self.download_view),
                name="processes_processdefinition_download",
            ),
        ] + super().get_urls()

    def _get_viewable(self, request, pk) -> ProcessDefinition:
        definition = get_object_or_404(ProcessDefinition, pk=pk)
        if not self.has_view_permission(request, definition):
            raise PermissionDenied
        return definition

    def diagram_view(self, request, pk):
        definition = self._get_viewable(request, pk)
        return HttpResponse(diagram.render_definition(definition), content_type="image/svg+xml")

    def download_view(self, request, pk):
        definition = self._get_viewable(request, pk)
        response = HttpResponse(pretty(definition.spec), content_type="application/json")
        response["Content-Disposition"] = (
            f'attachment; filename="{definition.key}-v{definition.version}.json"'
        )
        return response

    def diff_view(self, request, pk):
        definition = self._get_viewable(request, pk)
        form = DiffForm(request.GET or None, definition=definition)
        other = None
        if form.is_bound and form.is_valid():
            other = form.cleaned_data["other"]
        elif not form.is_bound:
            other = (
                ProcessDefinition.objects.filter(key=definition.key, version__lt=definition.version)
                .order_by("-version")
                .first()
            )
            if other is not None:
                form = DiffForm(initial={"other": other.pk}, definition=definition)
        lines = []
        if other is not None:
            old, new = (
                (other, definition) if other.version < definition.version else (definition, other)
            )
            for line in difflib.unified_diff(
                pretty(old.spec).splitlines(),
                pretty(new.spec).splitlines(),
                fromfile=str(old),
                tofile=str(new),
                lineterm="",
                n=4,
            ):
                kind = (
                    "meta"
                    if line.startswith(("---", "+++", "@@"))
                    else "add"
                    if line.startswith("+")
                    else "del"
                    if line.startswith("-")
                    else "same"
                )
                lines.append((kind, line))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Compare versions of {definition.key}",
            "opts": self.model._meta,
            "original": definition,
            "other": other,
            "form": form,
            "lines": lines,
        }
        return TemplateResponse(request, "admin/processes/processdefinition/diff.html", context)

    def _definition_action(self, request, pk, *, verb, run, explanation):
        definition = get_object_or_404(ProcessDefinition, pk=pk)
        if not authority.may_publish(request.user, definition.key):
            raise PermissionDenied
        change_url = reverse("admin:processes_processdefinition_change", args=[pk])
        if request.method == "POST":
            try:
                run(definition_id=definition.pk, actor=Actor.for_user(request.user))
            except SpecValidationError as exc:
                self.message_user(request, "; ".join(str(e) for e in exc.errors), messages.ERROR)
            except EngineError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                definition = ProcessDefinition.objects.get(pk=pk)
                self.log_change(request, definition, f"{verb}d")
                self.message_user(request, f"{definition} is now {definition.status}.")
            return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "title": f"{verb.capitalize()} {definition}?",
            "opts": self.model._meta,
            "object": definition,
            "explanation": explanation,
            "verb": verb,
            "form": None,
            "cancel_url": change_url,
        }
        return TemplateResponse(request, "admin/processes/confirm_action.html", context)

    def publish_view(self, request, pk):
        return self._definition_action(
            request,
            pk,
            verb="publish",
            run=engine.definition_publish,
            explanation="New instances will use this version; its spec can't change afterwards.",
        )

    def retire_view(self, request, pk):
        return self._definition_action(
            request,
            pk,
            verb="retire",
            run=engine.definition_retire,
            explanation="No new instance will start on this version; running ones go on.",
        )

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        form = context.get("adminform").form if context.get("adminform") else None
        context.update(
            {
                "diagram_svg": self.diagram(obj) if obj is not None else "",
                "spec_errors": getattr(form, "spec_errors", []),
                "can_manage": obj is not None and authority.may_publish(request.user, obj.key),
                "DefinitionStatus": DefinitionStatus,
            }
        )
        return super().render_change_form(request, context, add, change, form_url, obj)


# --- instances ------------------------------------------------------------------------------------


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class TaskInline(ReadOnlyInline):
    model = TaskInstance
    fields = (
        "stage",
        "name",
        "kind",
        "state_badge",
        "attempts",
        "assignee",
        "candidate_role",
        "due_at",
        "finished_at",
        "error",
        "operate",
    )
    readonly_fields = fields
    verbose_name_plural = "tasks"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("assignee", "process")

    @admin.display(description="type")
    def kind(self, obj):
        if obj.type == "HUMAN":
            return "human"
        return "external" if obj.is_external else "service"

    @admin.display(description="state")
    def state_badge(self, obj):
        shown = diagram.display_state(obj.state, obj.type)
        label = "waiting for a person" if shown == "waiting" else obj.state
        if obj.is_overdue:
            label += " (overdue)"
        return badge(shown, label)

    @admin.display(description="last error")
    def error(self, obj):
        if not obj.last_error:
            return ""
        short = obj.last_error if len(obj.last_error) < 120 else obj.last_error[:119] + "…"
        return format_html('<span title="{}">{}</span>', obj.last_error, short)

    @admin.display(description="actions")
    def operate(self, obj):
        process = obj.process
        if not can_operate(_request.get(), process.definition_key):
            return ""
        links = []

        def url(action):
            return reverse(
                "admin:processes_processinstance_task_action", args=[process.pk, obj.pk, action]
            )

        active = process.state in ACTIVE_PROCESS_STATES
        if active and obj.state == TaskState.FAILED:
            links.append((url("retry"), "retry"))
        if active and obj.state in (TaskState.PENDING, TaskState.SCHEDULED, TaskState.FAILED):
            links.append((url("skip"), "skip"))
        if process.state != ProcessState.CANCELLED and obj.state != TaskState.PENDING:
            links.append((url("replay"), "replay"))
        return format_html_join(
            " · ", '<a class="fd-task-action" href="{}">{}</a>', ((u, t) for u, t in links)
        )


class EventInline(ReadOnlyInline):
    model = ProcessEvent
    fields = ("seq", "created_at", "type", "task_name", "actor", "details")
    readonly_fields = fields
    ordering = ("seq",)
    verbose_name_plural = "history (append-only)"

    @admin.display(description="actor")
    def actor(self, obj):
        return f"{obj.actor_display} ({obj.actor_type})"

    @admin.display(description="data")
    def details(self, obj):
        if not obj.data:
            return ""
        text = json.dumps(obj.data, ensure_ascii=False, sort_keys=True)
        short = text if len(text) <= 160 else text[:159] + "…"
        return format_html('<code title="{}">{}</code>', text, short)


@dataclass(frozen=True)
class Operation:
    """A repair the admin confirms with a reason: ``run`` calls one engine service and says
    what happened."""

    verb: str
    explanation: str
    run: Callable[[ProcessInstance, TaskInstance | None, dict, Actor], str]
    asks_stage: bool = False


def _cancel(process, task, data, actor):
    engine.process_cancel(process_id=process.pk, actor=actor, reason=data["reason"])
    return f"{process} cancelled; compensation handlers (if any) run in the background."


def _replay_stage(process, task, data, actor):
    engine.stage_replay(
        process_id=process.pk, stage=data["stage"], actor=actor, reason=data["reason"]
    )
    return f"Stage {data['stage']} of {process} replayed."


def _retry(process, task, data, actor):
    result = engine.task_retry(task_id=task.pk, actor=actor, reason=data["reason"])
    if getattr(result, "_duplicate", False):
        return f"Task {task.name} was already scheduled: nothing changed."
    return f"Task {task.name} scheduled again."


def _skip(process, task, data, actor):
    engine.task_skip(task_id=task.pk, actor=actor, reason=data["reason"])
    return f"Task {task.name} skipped."


def _replay(process, task, data, actor):
    engine.task_replay(task_id=task.pk, actor=actor, reason=data["reason"])
    return f"Task {task.name} replayed."


PROCESS_OPERATIONS = {
    "cancel": Operation(
        "cancel this process",
        "Every open task is cancelled, then the compensation handlers of the completed tasks "
        "run, newest first.",
        _cancel,
    ),
    "replay-stage": Operation(
        "replay a stage",
        "The chosen stage and every later one are reset and run again.",
        _replay_stage,
        asks_stage=True,
    ),
}
TASK_OPERATIONS = {
    "retry": Operation(
        "retry this task", "Schedule the failed task again with a fresh attempt budget.", _retry
    ),
    "skip": Operation(
        "skip this task",
        "Mark the task skipped: what depends on it goes on as if it were done.",
        _skip,
    ),
    "replay": Operation(
        "replay this task",
        "Run the task again, with what depends on it in its stage and every later stage.",
        _replay,
    ),
}


@admin.register(ProcessInstance)
class ProcessInstanceAdmin(GrantedAdmin):
    list_display = (
        "business_key",
        "definition_label",
        "state_badge",
        "business_status",
        "current_stage",
        "overdue",
        "created_at",
        "updated_at",
    )
    list_filter = (
        "state",
        DefinitionKeyFilter,
        "definition",
        BusinessStatusFilter,
        IncidentFilter,
        OverdueFilter,
        StartedBetweenFilter,
    )
    list_select_related = ("definition",)
    search_fields = ("business_key",)
    search_help_text = "An exact business key or an instance id."
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts would scan every instance
    list_per_page = 50
    ordering = ("-created_at",)
    inlines = (TaskInline, EventInline)
    actions = ("export_csv", "export_json")
    readonly_fields = (
        "id",
        "business_key",
        "definition_link",
        "state_badge",
        "business_status",
        "current_stage",
        "started_by",
        "created_at",
        "updated_at",
        "completed_at",
        "diagram",
        "variables_pretty",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    ("business_key", "definition_link"),
                    ("state_badge", "business_status", "current_stage"),
                    ("created_at", "updated_at", "completed_at"),
                    ("started_by", "id"),
                )
            },
        ),
        ("Variables", {"fields": ("variables_pretty",), "classes": ("collapse",)}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(has_overdue=dashboard.has_overdue_task())

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        # Exact matches only: both use an index, a LIKE over millions of rows would not.
        try:
            pk = uuid.UUID(term)
        except ValueError:
            return queryset.filter(business_key=term), False
        return queryset.filter(Q(pk=pk) | Q(business_key=term)), False

    # Everything here is read-only; operating goes through the action pages below.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    # Columns.

    @admin.display(description="definition", ordering="definition_key")
    def definition_label(self, obj):
        return f"{obj.definition_key} v{obj.definition.version}"

    @admin.display(description="definition")
    def definition_link(self, obj):
        url = reverse("admin:processes_processdefinition_change", args=[obj.definition_id])
        return format_html('<a href="{}">{}</a>', url, obj.definition)

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj):
        label = "failed (incident)" if obj.state == ProcessState.FAILED else obj.state
        return badge(obj.state, label)

    @admin.display(description="overdue", boolean=True)
    def overdue(self, obj):
        return bool(getattr(obj, "has_overdue", False))

    @admin.display(description="diagram")
    def diagram(self, obj):
        tasks = list(obj.tasks.all())
        try:
            svg = diagram.render_instance(obj, tasks)
        except Exception as exc:
            return f"cannot draw this process: {exc}"
        return format_html('<div class="fd-diagram-wrap">{}</div>', mark_safe(svg))

    @admin.display(description="variables")
    def variables_pretty(self, obj):
        return format_html('<pre class="fd-json-view">{}</pre>', pretty(obj.variables))

    # Pages.

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        token = _request.set(request)
        try:
            process = ProcessInstance.objects.filter(pk=_uuid_or_none(object_id)).first()
            key = process.definition_key if process is not None else ""
            extra_context = {
                **(extra_context or {}),
                "can_operate": bool(key) and can_operate(request, key),
                "can_correct": bool(key)
                and authority.has_definition_perm(request.user, authority.CORRECT, key),
            }
            response = super().changeform_view(request, object_id, form_url, extra_context)
            if hasattr(response, "render"):
                response.render()
            return response
        finally:
            _request.reset(token)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(
                {
                    "process": obj,
                    "diagram_svg": self.diagram(obj),
                    "is_active": obj.state in ACTIVE_PROCESS_STATES,
                    "can_replay": obj.state != ProcessState.CANCELLED,
                }
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "dashboard/", wrap(self.dashboard_view), name="processes_processinstance_dashboard"
            ),
            path(
                "export/<str:fmt>/",
                wrap(self.export_list_view),
                name="processes_processinstance_export",
            ),
            path(
                "<uuid:object_id>/history.<str:fmt>",
                wrap(self.history_export_view),
                name="processes_processinstance_history_export",
            ),
            path(
                "<uuid:object_id>/variables/",
                wrap(self.variables_view),
                name="processes_processinstance_variables",
            ),
            path(
                "<uuid:object_id>/diagram.svg",
                wrap(self.diagram_view),
                name="processes_processinstance_diagram",
            ),
            path(
                "<uuid:object_id>/cancel/",
                wrap(self.operation_view),
                {"action": "cancel"},
                name="processes_processinstance_cancel",
            ),
            path(
                "<uuid:object_id>/replay-stage/",
                wrap(self.operation_view),
                {"action": "replay-stage"},
                name="processes_processinstance_replay_stage",
            ),
            path(
                "<uuid:object_id>/tasks/<int:task_id>/<str:action>/",
                wrap(self.operation_view),
                name="processes_processinstance_task_action",
            ),
        ] + super().get_urls()

    def _get_process(self, request, object_id) -> ProcessInstance:
        process = get_object_or_404(
            ProcessInstance.objects.select_related("definition"), pk=object_id
        )
        if not self.has_view_permission(request, process):
            raise PermissionDenied
        return process

    def operation_view(self, request, object_id, action, task_id=None):
        """Confirm an operation with a reason; on POST call its engine service as the admin."""
        op = PROCESS_OPERATIONS.get(action) if task_id is None else TASK_OPERATIONS.get(action)
        if op is None:
            raise Http404("unknown action")
        process = self._get_process(request, object_id)
        task = None
        if task_id is not None:
            task = get_object_or_404(TaskInstance, pk=task_id, process_id=process.pk)
        if not can_operate(request, process.definition_key):
            raise PermissionDenied
        stages = [s.name for s in process.definition.parsed().stages] if op.asks_stage else None
        change_url = reverse("admin:processes_processinstance_change", args=[process.pk])
        form = ActionForm(request.POST or None, stages=stages)
        if request.method == "POST" and form.is_valid():
            try:
                note = op.run(process, task, form.cleaned_data, Actor.for_user(request.user))
            except EngineError as exc:
                self.message_user(request, f"Could not {op.verb}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, note, messages.SUCCESS)
                return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "title": f"{op.verb.capitalize()}?",
            "opts": self.model._meta,
            "object": process,
            "task": task,
            "explanation": op.explanation,
            "verb": op.verb,
            "form": form,
            "cancel_url": change_url,
            "danger": op.verb.startswith("cancel"),
        }
        return TemplateResponse(request, "admin/processes/confirm_action.html", context)

    def diagram_view(self, request, object_id):
        process = self._get_process(request, object_id)
        return HttpResponse(diagram.render_instance(process), content_type="image/svg+xml")

    def variables_view(self, request, object_id):
        """Correct the variables in place: the edited JSON against the stored one, with a reason
        (one ``variables_changed`` event, needs the ``correct_variables`` grant)."""
        process = self._get_process(request, object_id)
        if not authority.has_definition_perm(
            request.user, authority.CORRECT, process.definition_key
        ):
            raise PermissionDenied
        change_url = reverse("admin:processes_processinstance_change", args=[process.pk])
        form = VariablesForm(request.POST or None, variables=process.variables)
        if request.method == "POST" and form.is_valid():
            try:
                engine.process_correct_variables(
                    process_id=process.pk,
                    actor=Actor.for_user(request.user),
                    set=form.cleaned_data["set"],
                    unset=form.cleaned_data["unset"],
                    reason=form.cleaned_data["reason"],
                )
            except EngineError as exc:
                form.add_error(None, exc.message)
                for field, problems in (exc.fields or {}).items():
                    if field == "reason":
                        form.add_error("reason", problems)
            else:
                self.message_user(request, "Variables corrected.", messages.SUCCESS)
                return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "title": "Correct the variables?",
            "opts": self.model._meta,
            "object": process,
            "task": None,
            "explanation": "Edit the JSON below. Only what you change is recorded, with each "
            "value before and after and your reason, in the process history.",
            "verb": "correct the variables",
            "form": form,
            "cancel_url": change_url,
        }
        return TemplateResponse(request, "admin/processes/confirm_action.html", context)

    def history_export_view(self, request, object_id, fmt):
        if fmt not in ("csv", "json"):
            raise Http404("unknown format")
        process = self._get_process(request, object_id)
        return history_response([process.pk], fmt, f"history-{process.definition_key}-{process.pk}")

    def export_list_view(self, request, fmt):
        """The history of every instance of the filtered list (as the changelist filters it)."""
        if fmt not in ("csv", "json"):
            raise Http404("unknown format")
        if not self.has_view_permission(request):
            raise PermissionDenied
        changelist = self.get_changelist_instance(request)
        qs = changelist.get_queryset(request)
        limit = export_limit()
        ids = list(qs.values_list("pk", flat=True)[: limit + 1])
        truncated = len(ids) > limit
        return history_response(ids[:limit], fmt, "history", truncated=truncated)

    @admin.action(description="Export the history of the selected instances (CSV)")
    def export_csv(self, request, queryset):
        ids = list(queryset.order_by("-created_at").values_list("pk", flat=True))
        return history_response(ids, "csv", "history")

    @admin.action(description="Export the history of the selected instances (JSON)")
    def export_json(self, request, queryset):
        ids = list(queryset.order_by("-created_at").values_list("pk", flat=True))
        return history_response(ids, "json", "history")

    def dashboard_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        definitions = ProcessDefinition.objects.all()
        granted = authority.granted_keys(request.user, authority.SEE)
        if granted is not None:
            definitions = definitions.filter(key__in=granted)
        keys = list(definitions.order_by("key").values_list("key", flat=True).distinct())
        key = request.GET.get("key") or (keys[0] if keys else None)
        if key is not None and key not in keys:
            self.message_user(request, f"No definition {key!r}.", messages.ERROR)
            key = keys[0] if keys else None
        try:
            days = int(request.GET.get("days", "7"))
        except ValueError:
            days = 7
        if days not in DASHBOARD_WINDOWS:
            days = 7
        context = {
            **self.admin_site.each_context(request),
            "title": "Process dashboard",
            "opts": self.model._meta,
            "keys": keys,
            "key": key,
            "days": days,
            "windows": DASHBOARD_WINDOWS,
        }
        if key is not None:
            dash = dashboard.build(key, days=days)
            total = dash.total or 1
            changelist = reverse("admin:processes_processinstance_changelist")
            context.update(
                {
                    "dash": dash,
                    "states": [
                        {
                            "state": state,
                            "label": label,
                            "n": dash.by_state.get(state, 0),
                            "pct": round(100 * dash.by_state.get(state, 0) / total, 1),
                            "colour": STATE_COLOURS.get(state, "#57606a"),
                            "url": f"{changelist}?definition_key={key}&state__exact={state}",
                        }
                        for state, label in ProcessState.choices
                    ],
                    "state_labels": ProcessState.choices,
                    "task_rows": [
                        {
                            "f": f,
                            "lead_p50": dashboard.format_seconds(f.lead_p50),
                            "lead_p95": dashboard.format_seconds(f.lead_p95),
                            "run_p50": dashboard.format_seconds(f.run_p50),
                            "run_p95": dashboard.format_seconds(f.run_p95),
                            "waiting_p50": dashboard.format_seconds(f.waiting_p50)
                            if f.is_human
                            else "",
                            "waiting_p95": dashboard.format_seconds(f.waiting_p95)
                            if f.is_human
                            else "",
                            "waiting_total": dashboard.format_seconds(f.waiting_total)
                            if f.is_human and f.completed
                            else "",
                        }
                        for f in dash.tasks
                    ],
                    "heatmap": mark_safe(dashboard.heatmap_svg(dash)),
                    "incidents_url": f"{changelist}?definition_key={key}&state__exact=failed",
                    "breaches_url": f"{changelist}?definition_key={key}&overdue=yes",
                }
            )
        return TemplateResponse(request, "admin/processes/dashboard.html", context)


DASHBOARD_WINDOWS = (1, 7, 30, 90, 365)


# --- the event log --------------------------------------------------------------------------------


@admin.register(ProcessEvent)
class ProcessEventAdmin(GrantedAdmin):
    """Browse the audit log. Append-only: nobody changes or deletes an event, superusers included."""

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
        "data_pretty",
    )
    readonly_fields = fields
    key_lookup = "process__definition_key"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_search_results(self, request, queryset, search_term):
        return queryset, False

    @admin.display(description="process")
    def process_link(self, obj):
        url = reverse("admin:processes_processinstance_change", args=[obj.process_id])
        return format_html('<a href="{}">{}</a>', url, obj.process)

    @admin.display(description="actor")
    def actor(self, obj):
        return f"{obj.actor_display} ({obj.actor_type})"

    @admin.display(description="data")
    def data_pretty(self, obj):
        return format_html('<pre class="fd-json-view">{}</pre>', pretty(obj.data))
