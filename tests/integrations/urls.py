"""The project's URLs with the simulators mounted whatever FLOWDESK_SIMULATORS said at import."""

from django.urls import include, path

from config.urls import urlpatterns as project_urls

urlpatterns = [
    *[p for p in project_urls if str(p.pattern) != "simulators/"],
    path("simulators/", include("integrations.simulators.urls")),
]
