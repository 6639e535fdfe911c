"""Instances: the list (filters fit for millions of rows), the page of one instance (diagram,
variables, tasks with their repairs, history), repairs, exports and the dashboard's address.
Everything is read-only here; changes go through the repair pages (``operations``)."""

from __future__ import annotations

import json
import uuid

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from processes import (
    attachment_links,
    authority,
    control,
    dashboard,
    diagram,
    engine,
    history,
    selectors,
    timeline,
)
from processes.admin import incidents, operations, widgets
from processes.admin.base import ReadOnlyAdmin, can_operate
from processes.admin.bpmn import instance_diagram
from processes.admin.dashboard import dashboard_page
from processes.admin.exports import export_limit, history_response
from processes.admin.filters import (
    BusinessStatusFilter,
    DefinitionKeyFilter,
    EstimatedCountPaginator,
    IncidentFilter,
    OverdueFilter,
    RetentionDueFilter,
    StartedBetweenFilter,
)
from processes.admin.operations import change_url
from processes.errors import EngineError
from processes.events import Actor
from processes.models import (
    ACTIVE_PROCESS_STATES,
    UNDONE_PROCESS_STATES,
    ProcessInstance,
    ProcessState,
    TaskInstance,
    TaskState,
    state_word,
)


def task_kind(task) -> str:
    """What runs the task; a waiting TIMER says when it fires, a MESSAGE task what it waits for."""
    if task.type == "TIMER" and task.state == "scheduled" and task.wake_at:
        return f"timer, fires {task.wake_at:%Y-%m-%d %H:%M:%S} UTC"
    if task.type == "MESSAGE" and task.state == "scheduled" and task.message_name:
        return f"message {task.message_name} ({task.correlation_key})"
    if task.type in ("HUMAN", "TIMER", "MESSAGE"):
        return task.type.lower()
    return "external" if task.is_external else "service"


def task_rows(process, tasks, may_operate: bool) -> list[dict]:
    """The task table: each task with its kind, state badge, error and the repairs offered."""
    rows = []
    for task in tasks:
        word = task.get_state_display()
        rows.append(
            {
                "task": task,
                "kind": task_kind(task),
                "badge": widgets.badge(
                    task.state, word + (" (overdue)" if task.is_overdue else "")
                ),
                "error": widgets.clip(task.last_error, 120),
                "actions": operations.task_actions(process, task) if may_operate else [],
            }
        )
    return rows


def round_rows(process) -> list[dict]:
    """The executions rework loops ran again, oldest round first, results as clipped JSON."""
    rows = []
    for kept in selectors.task_rounds(process):
        text = json.dumps(kept.result, ensure_ascii=False, sort_keys=True) if kept.result else ""
        rows.append({"round": kept, "result": text, "short": widgets.clip(text, 120)})
    return rows


def history_rows(process) -> list[dict]:
    """The history, oldest first: each event with its data as one line of JSON, clipped, the
    seq of the event that caused it (when that event is of the same process), and the line it
    reads as (``timeline``: the inbox's words; an event told in an earlier event's line, as
    one failure's incident is, names that event in ``part_of``)."""
    rows = []
    events = list(process.events.order_by("seq"))
    seq_of = {e.pk: e.seq for e in events}
    line_of, part_of = {}, {}
    for line in timeline.lines(events):
        line_of[line.event.seq] = line
        part_of.update(dict.fromkeys(line.folded, line.event.seq))
    for event in events:
        text = json.dumps(event.data, ensure_ascii=False, sort_keys=True) if event.data else ""
        rows.append(
            {
                "event": event,
                "line": line_of.get(event.seq),
                "part_of": part_of.get(event.seq),
                "data": text,
                "short": widgets.clip(text, 160),
                "cause_seq": seq_of.get(event.caused_by),
                "as_of": event.created_at.isoformat(),
            }
        )
    return rows


def point_in_time(request, process) -> dict:
    """The page's ``?as_of=`` (ISO 8601): the state rebuilt from the events up to then, or the
    reason the value can't be used."""
    raw = request.GET.get("as_of")
    if not raw:
        return {}
    moment = parse_datetime(raw.strip())
    if moment is None:
        return {"as_of_raw": raw, "as_of_error": "not an ISO 8601 timestamp (2026-11-28T10:00)"}
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    point = history.state_at(process, moment)
    if point is None:
        return {"as_of_raw": raw, "as_of_error": "the process had not started then"}
    tasks = point.snapshot.tasks
    return {
        "as_of_raw": raw,
        "as_of_point": point,
        "as_of_state": state_word(ProcessState, point.snapshot.state),
        "as_of_tasks": [
            (name, state_word(TaskState, tasks.get(name, TaskState.PENDING)))
            for name in selectors.task_names(process)
        ],
        "as_of_variables": widgets.json_block(point.snapshot.variables),
    }


class ProcessInstanceAdmin(ReadOnlyAdmin):
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
        RetentionDueFilter,
        StartedBetweenFilter,
    )
    list_select_related = ("definition",)
    search_fields = ("business_key",)
    search_help_text = (
        "Part of a business key or of a searchable variable (the definition's search list, "
        "e.g. an employee's name), any case; or an instance id."
    )
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts would scan every instance
    list_per_page = 50
    ordering = ("-created_at",)
    actions = ("retry_failed", "export_csv", "export_json")
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
        "variables_pretty",
        "parent_link",
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
                    ("parent_link",),
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
        # An id, else a partial match on what the case is found by (a trigram index serves it)
        try:
            pk = uuid.UUID(term)
        except ValueError:
            return control.search_filter(queryset, term), False
        return queryset.filter(Q(pk=pk) | Q(business_key=term)), False

    def view_on_site(self, obj):
        """*View on site*: the inbox page of the instance's newest human task (what its people
        see), or the instance's page when it has none (an instance has no page of its own)."""
        human = obj.tasks.filter(type="HUMAN").order_by("-id").values_list("pk", flat=True)[:1]
        if human:
            return reverse("tasks_inbox:task", args=[human[0]])
        return change_url(obj)

    # Columns.

    @admin.display(description="definition", ordering="definition_key")
    def definition_label(self, obj):
        return f"{obj.definition_key} v{obj.definition.version}"

    @admin.display(description="definition")
    def definition_link(self, obj):
        url = reverse("admin:processes_processdefinition_change", args=[obj.definition_id])
        return widgets.link(url, obj.definition)

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj):
        return widgets.badge(obj.state, obj.get_state_display())

    @admin.display(description="overdue")
    def overdue(self, obj):
        """A red "overdue" badge on the instances that have an overdue task; healthy ones blank
        (a boolean column showed a green tick for the overdue ones)."""
        if getattr(obj, "has_overdue", False):
            return widgets.badge("failed", "overdue")
        return ""

    @admin.display(description="started by process")
    def parent_link(self, obj):
        if obj.parent_id is None:
            return "-"
        url = reverse("admin:processes_processinstance_change", args=[obj.parent_id])
        return widgets.link(url, f"{obj.parent} (task {obj.parent_task.name})")

    @admin.display(description="variables")
    def variables_pretty(self, obj):
        return widgets.json_block(obj.variables)

    # Pages.

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            tasks = list(TaskInstance.objects.filter(process=obj).select_related("assignee"))
            may_operate = can_operate(request, obj.definition_key)
            context.update(
                {
                    "process": obj,
                    "diagram_svg": instance_diagram(
                        obj,
                        tasks,
                        widgets.diagram(lambda: diagram.render_instance(obj, tasks), "process"),
                    ),
                    "is_active": obj.state in ACTIVE_PROCESS_STATES,
                    "can_replay": obj.state not in UNDONE_PROCESS_STATES,
                    "can_operate": may_operate,
                    "can_correct": authority.has_definition_perm(
                        request.user, authority.CORRECT, obj.definition_key
                    ),
                    "task_rows": task_rows(obj, tasks, may_operate),
                    "incidents": incidents.incidents(
                        obj,
                        tasks,
                        obj.definition.parsed(),
                        lambda task: operations.task_actions(obj, task) if may_operate else [],
                    ),
                    "history_rows": history_rows(obj),
                    "attachment_rows": [
                        (a, attachment_links.signed_path(a))
                        for a in selectors.attachments_of(obj.pk)
                    ],
                    "round_rows": round_rows(obj),
                    "children": list(
                        ProcessInstance.objects.filter(parent=obj)
                        .select_related("parent_task")
                        .order_by("business_key")[:500]
                    ),
                    **point_in_time(request, obj),
                }
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def history_view(self, request, object_id, extra_context=None):
        """The HISTORY button: the append-only history on the change page (the events), not
        Django's edit log, which nobody writes here."""
        url = reverse("admin:processes_processinstance_change", args=[object_id])
        return HttpResponseRedirect(url + "#events-group")

    def get_urls(self):
        wrap = self.admin_site.admin_view
        operate = wrap(self.operation_view)
        one = "<uuid:object_id>/"
        views = [
            ("dashboard/", wrap(self.dashboard_view), {}, "dashboard"),
            ("export/<str:fmt>/", wrap(self.export_list_view), {}, "export"),
            (one + "history.<str:fmt>", wrap(self.history_export_view), {}, "history_export"),
            (one + "variables/", wrap(self.variables_view), {}, "variables"),
            (one + "diagram.svg", wrap(self.diagram_view), {}, "diagram"),
            (one + "cancel/", operate, {"action": "cancel"}, "cancel"),
            (one + "replay-stage/", operate, {"action": "replay-stage"}, "replay_stage"),
            (one + "tasks/<int:task_id>/<str:action>/", operate, {}, "task_action"),
        ]
        return [
            path(route, view, kwargs, name=f"processes_processinstance_{name}")
            for route, view, kwargs, name in views
        ] + super().get_urls()

    def _get_process(self, request, object_id) -> ProcessInstance:
        process = get_object_or_404(
            ProcessInstance.objects.select_related("definition"), pk=object_id
        )
        if not self.has_view_permission(request, process):
            raise PermissionDenied
        return process

    def operation_view(self, request, object_id, action, task_id=None):
        ops = operations.PROCESS_OPERATIONS if task_id is None else operations.TASK_OPERATIONS
        if action not in ops:
            raise Http404("unknown action")
        process = self._get_process(request, object_id)
        task = None
        if task_id is not None:
            task = get_object_or_404(TaskInstance, pk=task_id, process_id=process.pk)
        if not can_operate(request, process.definition_key):
            raise PermissionDenied
        return operations.operate(self, request, process, ops[action], task)

    def variables_view(self, request, object_id):
        process = self._get_process(request, object_id)
        if not authority.has_definition_perm(
            request.user, authority.CORRECT, process.definition_key
        ):
            raise PermissionDenied
        return operations.correct_variables(self, request, process)

    def diagram_view(self, request, object_id):
        process = self._get_process(request, object_id)
        return HttpResponse(diagram.render_instance(process), content_type="image/svg+xml")

    def dashboard_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        return dashboard_page(self, request)

    # Exports.

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
        try:
            qs = self.get_changelist_instance(request).queryset
        except IncorrectLookupParameters as exc:
            self.message_user(
                request,
                f"Nothing exported: the list's filters are not valid ({exc}).",
                messages.ERROR,
            )
            return HttpResponseRedirect(reverse("admin:processes_processinstance_changelist"))
        limit = export_limit()
        ids = list(qs.values_list("pk", flat=True)[: limit + 1])
        return history_response(ids[:limit], fmt, "history", truncated=len(ids) > limit)

    @admin.action(description="Retry the failed tasks of the selected instances")
    def retry_failed(self, request, queryset):
        """Each failed task of each selected instance the admin may operate, retried through
        the engine (one task_retried event each, the admin as actor)."""
        actor = Actor.for_user(request.user)
        retried, refused, problems = 0, 0, []
        for process in queryset.select_related(None).only("pk", "definition_key", "state"):
            if not can_operate(request, process.definition_key):
                refused += 1
                continue
            failed = TaskInstance.objects.filter(process_id=process.pk, state=TaskState.FAILED)
            for task in failed.only("pk", "name"):
                try:
                    engine.task_retry(
                        task_id=task.pk, actor=actor, reason="bulk retry (admin list)"
                    )
                    retried += 1
                except EngineError as exc:
                    problems.append(f"{task.name}: {exc.message}")
        level = messages.SUCCESS if retried and not problems else messages.WARNING
        text = f"{retried} failed task{'s' if retried != 1 else ''} scheduled again."
        if refused:
            text += f" {refused} instance(s) skipped: you may not operate them."
        if problems:
            text += " Not retried: " + "; ".join(problems[:5])
        self.message_user(request, text, level)

    @admin.action(description="Export the history of the selected instances (CSV)")
    def export_csv(self, request, queryset):
        ids = list(queryset.order_by("-created_at").values_list("pk", flat=True))
        return history_response(ids, "csv", "history")

    @admin.action(description="Export the history of the selected instances (JSON)")
    def export_json(self, request, queryset):
        ids = list(queryset.order_by("-created_at").values_list("pk", flat=True))
        return history_response(ids, "json", "history")
