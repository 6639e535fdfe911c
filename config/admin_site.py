"""The admin site: ``/admin/`` is the operations home (Camunda Operate's first screen), and
the technical apps sit under one "System" group below the process apps.

Here, above every app (``config`` is the top layer), because the home reads both the process
figures (``processes.control.home``) and the events-out dead letters (``integrations``).
"""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse

# Shown first, in this order; people (users and roles) next; everything else is "System".
PROCESS_APPS = ("processes", "tasks_inbox", "integrations")
PEOPLE_APPS = ("auth",)
TECHNICAL_MODELS = ("SimulatorFault", "SimulatorPayout", "SimulatorNotice", "SimulatorCall")
SYSTEM = "System"


class FlowdeskAdminSite(admin.AdminSite):
    index_template = "admin/flowdesk_home.html"
    site_header = "Flowdesk control room"
    site_title = "Flowdesk"
    index_title = "Operations"

    def get_app_list(self, request, app_label=None):
        """Process apps first, then people, then one "System" group with the technical models
        (tokens, login lockouts, background work, simulators, ...). An app's own page (with
        ``app_label``) is Django's."""
        apps = super().get_app_list(request, app_label)
        if app_label is not None:
            return apps
        first, people, system_models = [], [], []
        for app in apps:
            label = app["app_label"]
            technical = [m for m in app["models"] if m["object_name"] in TECHNICAL_MODELS]
            if label in PROCESS_APPS:
                app["models"] = [m for m in app["models"] if m not in technical]
                if app["models"]:
                    first.append(app)
                system_models += [{**m, "name": f"{m['name']} ({app['name']})"} for m in technical]
            elif label in PEOPLE_APPS:
                people.append(app)
            else:
                system_models += [
                    {**m, "name": f"{m['name']} ({app['name']})"} for m in app["models"]
                ]
        first.sort(key=lambda app: PROCESS_APPS.index(app["app_label"]))
        if not system_models:
            return first + people
        system = {
            "name": SYSTEM,
            "app_label": "system",
            "app_url": reverse("admin:index", current_app=self.name) + "#system",
            "has_module_perms": True,
            "models": sorted(system_models, key=lambda m: m["name"].lower()),
        }
        return [*first, *people, system]

    def index(self, request, extra_context=None):
        from processes import control

        home = control.home(request.user)
        context = {"home": home, "dead_letters": _dead_letters(request.user)}
        return super().index(request, {**context, **(extra_context or {})})


def _dead_letters(user) -> int | None:
    """Events-out deliveries that gave up (None: not for this person to see)."""
    from integrations.models import DeliveryStatus, EventDelivery

    if not user.has_perm("integrations.view_eventdelivery"):
        return None
    return EventDelivery.objects.filter(status=DeliveryStatus.DEAD).count()
