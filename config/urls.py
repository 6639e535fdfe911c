from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from processes.api.index import api_index
from processes.health import healthz
from tasks_inbox.views import admin_login, favicon

admin.site.site_url = "/inbox/"  # "View site": the inbox (its header links back to the admin)

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("favicon.ico", favicon, name="favicon"),
    path("admin/login/", admin_login),
    path("admin/", admin.site.urls),
    path("api/", api_index, name="api-index"),
    path("api/", include("integrations.api_urls")),  # before the processes API's fallback
    path("api/", include("processes.api.urls")),
    path("", include("tasks_inbox.urls")),
]

if settings.FLOWDESK_SIMULATORS:
    urlpatterns.append(path("simulators/", include("integrations.simulators.urls")))
