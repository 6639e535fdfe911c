"""The REST API's paths (DESIGN §6: the paths are part of the contract)."""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from processes.api import views
from processes.api.exceptions import error_response


def not_found(request, *args, **kwargs):
    return error_response(404, "not_found", f"no API endpoint {request.path}")


urlpatterns = [
    path("auth/token/", views.TokenView.as_view(), name="api-token"),
    path("definitions/", views.DefinitionListView.as_view(), name="api-definitions"),
    path("definitions/<str:key>/", views.DefinitionDetailView.as_view(), name="api-definition"),
    path("processes/", views.ProcessListView.as_view(), name="api-processes"),
    path("processes/<uuid:pk>/", views.ProcessDetailView.as_view(), name="api-process"),
    path(
        "processes/<uuid:pk>/events/", views.ProcessEventsView.as_view(), name="api-process-events"
    ),
    path(
        "processes/<uuid:pk>/cancel/", views.ProcessCancelView.as_view(), name="api-process-cancel"
    ),
    path(
        "processes/<uuid:pk>/variables/",
        views.ProcessVariablesView.as_view(),
        name="api-process-variables",
    ),
    path("events/", views.SeedEventView.as_view(), name="api-events"),
    path("queues/<str:task_queue>/tasks/", views.QueueTasksView.as_view(), name="api-queue-tasks"),
    path("inbox/", views.InboxView.as_view(), name="api-inbox"),
    path("tasks/<int:pk>/", views.TaskDetailView.as_view(), name="api-task"),
    path("tasks/<int:pk>/claim/", views.TaskClaimView.as_view(), name="api-task-claim"),
    path("tasks/<int:pk>/release/", views.TaskReleaseView.as_view(), name="api-task-release"),
    path("tasks/<int:pk>/complete/", views.TaskCompleteView.as_view(), name="api-task-complete"),
    path("tasks/<int:pk>/delegate/", views.TaskDelegateView.as_view(), name="api-task-delegate"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    re_path(r"^.*$", not_found),
]
