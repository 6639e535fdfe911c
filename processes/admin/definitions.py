"""Definitions: import or edit JSON (every problem at its path), drafts, publish and retire,
versions, diagrams, diffs, downloads. The engine stores every change, with the admin as actor."""

from __future__ import annotations

import difflib

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import flatten_fieldsets, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from processes import authority, diagram, engine, selectors
from processes.admin import widgets
from processes.admin.base import GrantedAdmin
from processes.admin.bpmn import BpmnViews, definition_diagram
from processes.admin.forms import BatchCsvForm, DefinitionForm, DiffForm, MigrationForm
from processes.db.core import parse_id
from processes.errors import EngineError
from processes.events import Actor
from processes.models import DefinitionStatus, ProcessDefinition, ProcessInstance
from processes.spec import SpecValidationError

INFO = [
    "key",
    "version",
    "name",
    "component_name",
    "status_badge",
    "created_at",
    "published_at",
    "created_by",
]


# Publishing and retiring a version: the engine service, and what it means.
VERBS = {"publish": gettext_lazy("publish"), "retire": gettext_lazy("retire")}
LIFECYCLE = {
    "publish": (
        engine.definition_publish,
        gettext_lazy("New instances will use this version; its spec can't change afterwards."),
    ),
    "retire": (
        engine.definition_retire,
        gettext_lazy("No new instance will start on this version; running ones go on."),
    ),
}


def change_url(pk) -> str:
    return reverse("admin:processes_processdefinition_change", args=[pk])


class ProcessDefinitionAdmin(BpmnViews, GrantedAdmin):
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
    readonly_fields = (*INFO, "versions_table", "spec_pretty", "schedule_table")
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
        if obj.status == DefinitionStatus.DRAFT:
            return [
                ("Version", {"fields": INFO}),
                ("Definition", {"fields": ["spec_text", "upload"]}),
                ("All versions", {"fields": ["versions_table"]}),
            ]
        schedule = [("Scheduled starts", {"fields": ["schedule_table"]})] if _scheduled(obj) else []
        return [
            ("Version", {"fields": INFO}),
            *schedule,
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
        # Versions are kept with their audit rows: a draft nobody wants is simply never published.
        return False

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        source = parse_id(request.GET.get("from"))
        if source is not None:
            definition = ProcessDefinition.objects.filter(pk=source).first()
            if definition is not None:
                initial["spec_text"] = widgets.pretty(definition.spec)
        return initial

    # Saving is not the ModelAdmin's save pipeline: the form validates, the engine stores, the
    # page says what happened and goes on.

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if request.method != "POST":
            return super().changeform_view(request, object_id, form_url, extra_context)
        definition = None
        if object_id is None:
            if not self.has_add_permission(request):
                raise PermissionDenied
        else:
            definition = self.get_object(request, unquote(object_id))
            if not self.has_change_permission(request, definition):
                raise PermissionDenied
            if definition is None:
                return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        fieldsets = self.get_fieldsets(request, definition)
        Form = self.get_form(
            request, definition, change=definition is not None, fields=flatten_fieldsets(fieldsets)
        )
        form = Form(request.POST, request.FILES, instance=definition)
        if not form.is_valid():
            return self._form_page(request, form, definition, fieldsets, extra_context)
        try:
            saved, note = self._store(request, form, definition)
        except (SpecValidationError, EngineError) as exc:  # the engine's refusal, in its words
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, note, messages.SUCCESS)
            return HttpResponseRedirect(change_url(saved.pk))
        if definition is None:
            return HttpResponseRedirect(reverse("admin:processes_processdefinition_add"))
        return HttpResponseRedirect(change_url(definition.pk))

    def _store(self, request, form, definition) -> tuple[ProcessDefinition, str]:
        """Store the form's definition through the engine: (the definition, what happened)."""
        actor = Actor.for_user(request.user)
        data, publish = form.cleaned_data["data"], "_publish" in request.POST
        if definition is not None:
            saved = engine.definition_update_draft(
                definition_id=definition.pk, data=data, actor=actor
            )
            if publish:
                saved = engine.definition_publish(definition_id=saved.pk, actor=actor)
            self.log_change(request, saved, self.construct_change_message(request, form, None))
            return saved, f"{saved} saved" + (" and published" if publish else "")
        saved, created = engine.definition_import(data=data, actor=actor, publish=publish)
        if not created:
            return saved, f"identical to {saved} ({saved.status}): nothing new stored"
        self.log_addition(request, saved, self.construct_change_message(request, form, None, True))
        return saved, f"{saved} stored as {saved.status}"

    def _form_page(self, request, form, definition, fieldsets, extra_context):
        """The add or change page again, with the form's errors."""
        admin_form = helpers.AdminForm(
            form, list(fieldsets), {}, self.get_readonly_fields(request, definition), self
        )
        verb = "Add %s" if definition is None else "Change %s"
        context = {
            **self.admin_site.each_context(request),
            "title": verb % self.opts.verbose_name,
            "subtitle": str(definition) if definition else None,
            "adminform": admin_form,
            "object_id": definition.pk if definition else None,
            "original": definition,
            "is_popup": False,
            "to_field": None,
            "media": self.media + admin_form.media,
            "inline_admin_formsets": [],
            "errors": helpers.AdminErrorList(form, []),
            "preserved_filters": self.get_preserved_filters(request),
            **(extra_context or {}),
        }
        add = definition is None
        return self.render_change_form(request, context, add=add, change=not add, obj=definition)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        form = context["adminform"].form if context.get("adminform") else None
        context.update(
            {
                "diagram_svg": ""
                if obj is None
                else definition_diagram(
                    obj, widgets.diagram(lambda: diagram.render_definition(obj), "definition")
                ),
                "spec_errors": getattr(form, "spec_errors", []),
                "can_manage": obj is not None and authority.may_publish(request.user, obj.key),
                "DefinitionStatus": DefinitionStatus,
            }
        )
        return super().render_change_form(request, context, add, change, form_url, obj)

    # Columns and read-only fields.

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return widgets.badge(obj.status)

    @admin.display(description="instances", ordering="n_instances")
    def instance_count(self, obj):
        url = reverse("admin:processes_processinstance_changelist")
        return widgets.link(url, obj.n_instances, f"?definition__id__exact={obj.pk}")

    @admin.display(description="definition")
    def spec_pretty(self, obj):
        return widgets.json_block(obj.spec)

    @admin.display(description="schedule")
    def schedule_table(self, obj):
        rows = selectors.schedule_runs(obj)
        return widgets.render("schedule", rows=rows, zone=settings.TIME_ZONE)

    @admin.display(description="versions")
    def versions_table(self, obj):
        versions = self.get_queryset(None).filter(key=obj.key).order_by("-version")
        rows = [{"version": v, "badge": widgets.badge(v.status)} for v in versions]
        return widgets.render("versions", rows=rows, current=obj)

    # Extra pages.

    def get_urls(self):
        wrap = self.admin_site.admin_view
        lifecycle = wrap(self.lifecycle_view)
        views = [
            ("<int:pk>/diagram.svg", wrap(self.diagram_view), {}, "diagram"),
            ("<int:pk>/diff/", wrap(self.diff_view), {}, "diff"),
            ("<int:pk>/publish/", lifecycle, {"verb": "publish"}, "publish"),
            ("<int:pk>/retire/", lifecycle, {"verb": "retire"}, "retire"),
            ("<int:pk>/download.json", wrap(self.download_view), {}, "download"),
            ("<int:pk>/batch/", wrap(self.batch_view), {}, "batch"),
            ("<int:pk>/migrate/", wrap(self.migrate_view), {}, "migrate"),
        ]
        return (
            [
                path(route, view, kwargs, name=f"processes_processdefinition_{name}")
                for route, view, kwargs, name in views
            ]
            + self.bpmn_urls()
            + super().get_urls()
        )

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
        response = HttpResponse(widgets.pretty(definition.spec), content_type="application/json")
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
        context = {
            **self.admin_site.each_context(request),
            "title": f"Compare versions of {definition.key}",
            "opts": self.model._meta,
            "original": definition,
            "other": other,
            "form": form,
            "lines": [] if other is None else diff_lines(definition, other),
        }
        return TemplateResponse(request, "admin/processes/processdefinition/diff.html", context)

    def batch_view(self, request, pk):
        """Start one process of this version per CSV row (the monthly run); answer per row."""
        definition = get_object_or_404(ProcessDefinition, pk=pk)
        if not authority.has_definition_perm(request.user, authority.START, definition.key):
            raise PermissionDenied
        form = BatchCsvForm(request.POST or None, request.FILES or None)
        results = None
        if definition.status != DefinitionStatus.PUBLISHED:
            self.message_user(request, f"{definition} is {definition.status}", messages.ERROR)
            form = None
        elif request.method == "POST" and form.is_valid():
            try:
                results = engine.process_start_batch(
                    definition=definition,
                    items=form.cleaned_data["file"],
                    actor=Actor.for_user(request.user),
                )
            except EngineError as exc:
                self.message_user(request, str(exc), messages.ERROR)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Start a batch of {definition}",
            "opts": self.model._meta,
            "original": definition,
            "form": form,
            "results": results,
            "counts": batch_counts(results or []),
        }
        return TemplateResponse(request, "admin/processes/processdefinition/batch.html", context)

    def migrate_view(self, request, pk):
        """Move running instances of another version to this one: the plan, then per instance."""
        definition = get_object_or_404(ProcessDefinition, pk=pk)
        if not authority.may_migrate(request.user, definition.key):
            raise PermissionDenied
        form = MigrationForm(request.POST or None, definition=definition)
        results = None
        apply = "_migrate" in request.POST
        if request.method == "POST" and form.is_valid():
            try:
                results = engine.migrate_instances(
                    key=definition.key,
                    from_version=form.cleaned_data["source"].version,
                    to_version=definition.version,
                    mapping=form.cleaned_data["mapping"],
                    instance_ids=form.cleaned_data["instances"],
                    actor=Actor.for_user(request.user),
                    dry_run=not apply,
                )
            except EngineError as exc:
                for field, problems in (getattr(exc, "fields", None) or {}).items():
                    self.message_user(request, f"{field}: {'; '.join(problems)}", messages.ERROR)
                self.message_user(request, str(exc), messages.ERROR)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Move running instances to {definition}",
            "opts": self.model._meta,
            "original": definition,
            "form": form,
            "results": results,
            "applied": apply,
        }
        return TemplateResponse(request, "admin/processes/processdefinition/migrate.html", context)

    def lifecycle_view(self, request, pk, verb):
        """Publish or retire a version, once confirmed."""
        definition = get_object_or_404(ProcessDefinition, pk=pk)
        if not authority.may_publish(request.user, definition.key):
            raise PermissionDenied
        run, explanation = LIFECYCLE[verb]
        if request.method != "POST":
            return self.confirm_page(
                request,
                obj=definition,
                title=_("%(verb)s %(definition)s?")
                % {"verb": capfirst(VERBS[verb]), "definition": definition},
                verb=VERBS[verb],
                explanation=explanation,
                cancel_url=change_url(pk),
            )
        try:
            run(definition_id=definition.pk, actor=Actor.for_user(request.user))
        except (SpecValidationError, EngineError) as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            definition = ProcessDefinition.objects.get(pk=pk)
            self.log_change(request, definition, f"{verb}d")
            self.message_user(
                request,
                _("%(definition)s is now %(status)s.")
                % {"definition": definition, "status": definition.status},
            )
        return HttpResponseRedirect(change_url(pk))


def _scheduled(definition) -> bool:
    try:
        return bool(definition.parsed().schedule)
    except ValueError:  # a stored spec that no longer parses: its page still shows
        return False


def diff_lines(definition, other) -> list[tuple[str, str]]:
    """The unified diff of two versions' pretty JSON, older first: (kind, line) pairs."""
    old, new = (other, definition) if other.version < definition.version else (definition, other)
    lines = []
    for line in difflib.unified_diff(
        widgets.pretty(old.spec).splitlines(),
        widgets.pretty(new.spec).splitlines(),
        fromfile=str(old),
        tofile=str(new),
        lineterm="",
        n=4,
    ):
        if line.startswith(("---", "+++", "@@")):
            kind = "meta"
        else:
            kind = {"+": "add", "-": "del"}.get(line[:1], "same")
        lines.append((kind, line))
    return lines


def batch_counts(results) -> dict[str, int]:
    counts = {"created": 0, "existing": 0, "invalid": 0}
    for item in results:
        counts[item.outcome] += 1
    return counts
