"""The BPMN diagram in the admin. bpmn-js (vendored from its npm package, served by WhiteNoise, no
CDN) shows a definition with how many running cases wait at each task, and an instance with its
tasks' states marked; Flowdesk's own SVG drawing stays inside it, the picture for pages without
JavaScript. A draft is edited in bpmn-js's modeler, each element's Flowdesk fields as JSON beside
the canvas, and saved through the one BPMN check (``processes.bpmn.definition_from_bpmn``).
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from processes import bpmn, engine, selectors
from processes.admin import widgets
from processes.errors import EngineError
from processes.events import Actor
from processes.models import ProcessDefinition, ProcessState, TaskState
from processes.spec import SpecError, SpecValidationError

# bpmn-js as vendored under static/ (Makefile: vendor-bpmn-js); the templates load it from here.
BPMN_JS_VERSION = "18.31.1"
BPMN_JS = f"vendor/bpmn-js/{BPMN_JS_VERSION}"

# How a task's state is marked on the diagram (CSS classes fd-bpmn-<mark>).
MARKS = {
    TaskState.COMPLETED: "completed",
    TaskState.SCHEDULED: "active",
    TaskState.RUNNING: "active",
    TaskState.FAILED: "failed",
    TaskState.SKIPPED: "skipped",
    TaskState.CANCELLED: "cancelled",
    TaskState.COMPENSATING: "active",
    TaskState.COMPENSATION_RUNNING: "active",
    TaskState.COMPENSATED: "cancelled",
    TaskState.COMPENSATION_FAILED: "failed",
}


def _viewer(definition, svg, **data):
    """bpmn-js around the SVG ``svg``; the SVG alone when the definition can't be drawn."""
    try:
        xml = bpmn.bpmn_from_definition(definition.spec, definition.key).decode()
    except Exception:  # a stored spec that no longer parses: its page still shows
        return svg
    return widgets.render("bpmn", xml=xml, svg=svg, data=data, bpmn_js=BPMN_JS)


def definition_diagram(definition, svg):
    """The definition, each task with the number of running cases waiting there (or failed)."""
    counts = selectors.cases_waiting_by_task(definition)
    return _viewer(
        definition,
        svg,
        counts={bpmn.task_element_id(name): count for name, count in counts.items()},
    )


def instance_diagram(process, tasks, svg):
    """The instance's version, each task marked completed, active, failed, skipped, ..."""
    marks = {bpmn.task_element_id(t.name): MARKS[t.state] for t in tasks if t.state in MARKS}
    marks["_fd.start"] = "completed"
    if process.state == ProcessState.COMPLETED:
        marks["_fd.end"] = "completed"
    return _viewer(process.definition, svg, marks=marks)


class BpmnViews:
    """The definition admin's BPMN pages: download, and the modeler of a draft."""

    def bpmn_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "<int:pk>/download.bpmn",
                wrap(self.bpmn_download_view),
                name="processes_processdefinition_download_bpmn",
            ),
            path(
                "<int:pk>/modeler/",
                wrap(self.modeler_view),
                name="processes_processdefinition_modeler",
            ),
        ]

    def bpmn_download_view(self, request, pk):
        definition = self._get_viewable(request, pk)
        response = HttpResponse(
            bpmn.bpmn_from_definition(definition.spec, definition.key),
            content_type="application/xml",
        )
        name = f"{definition.key}-v{definition.version}.bpmn"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response

    def modeler_view(self, request, pk):
        """GET: the draft in the modeler. POST: the edited file, checked and stored as the
        draft; refused, the page comes back with the file as sent and every problem marked."""
        definition = get_object_or_404(ProcessDefinition, pk=pk)
        if not self.has_change_permission(request, definition):
            raise PermissionDenied
        errors: list[SpecError] = []
        xml = None
        if request.method == "POST":
            xml = request.POST.get("bpmn", "")
            try:
                data = {**bpmn.definition_from_bpmn(xml.encode("utf-8")), "key": definition.key}
                saved = engine.definition_update_draft(
                    definition_id=definition.pk, data=data, actor=Actor.for_user(request.user)
                )
            except SpecValidationError as exc:
                errors = exc.errors
            except EngineError as exc:
                errors = [SpecError("", str(exc))]
            else:
                self.log_change(request, saved, "edited in the BPMN modeler")
                self.message_user(request, f"{saved} saved", messages.SUCCESS)
                return HttpResponseRedirect(
                    reverse("admin:processes_processdefinition_modeler", args=[pk])
                )
        if xml is None:
            xml = bpmn.bpmn_from_definition(definition.spec, definition.key).decode()
        context = {
            **self.admin_site.each_context(request),
            "title": f"Edit the diagram of {definition}",
            "opts": self.model._meta,
            "original": definition,
            "xml": xml,
            "spec_errors": errors,
            "error_elements": sorted({e.path for e in errors if e.path}),
            "bpmn_js": BPMN_JS,
        }
        return TemplateResponse(request, "admin/processes/processdefinition/modeler.html", context)
