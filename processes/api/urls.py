"""The REST API's paths (DESIGN §6: the paths are part of the contract)."""

from django.urls import path, re_path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from processes.api.exceptions import error_response
from processes.api.views import (
    attachments,
    auth,
    definitions,
    events,
    operate,
    processes,
    stats,
    tasks,
)


class TextConverter:
    """A key or queue name in a path: printable text without NUL or control characters (which
    PostgreSQL can't compare), at most 200 characters. Anything else is simply not a URL: 404."""

    regex = r"[^/\x00-\x1f\x7f]{1,200}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(TextConverter, "text")


def not_found(request, *args, **kwargs):
    return error_response(404, "not_found", f"no API endpoint {request.path}")


urlpatterns = [
    path("auth/token/", auth.TokenView.as_view(), name="api-token"),
    path("definitions/", definitions.DefinitionListView.as_view(), name="api-definitions"),
    # before the detail: a definition key may contain dots (``definitions/schema.json/`` is the
    # definition keyed "schema.json"; without the slash, the schema)
    path(
        "definitions/schema.json",
        definitions.DefinitionSchemaView.as_view(),
        name="api-definition-schema",
    ),
    path(
        "definitions/<text:key>/",
        definitions.DefinitionDetailView.as_view(),
        name="api-definition",
    ),
    path(
        "definitions/<text:key>/bpmn/",
        definitions.DefinitionBpmnView.as_view(),
        name="api-definition-bpmn",
    ),
    path(
        "definitions/<str:key>/migrations/",
        definitions.DefinitionMigrationView.as_view(),
        name="api-definition-migrations",
    ),
    path("processes/", processes.ProcessListView.as_view(), name="api-processes"),
    path("processes/batch/", processes.ProcessBatchView.as_view(), name="api-process-batch"),
    path("processes/<uuid:pk>/", processes.ProcessDetailView.as_view(), name="api-process"),
    path(
        "processes/<uuid:pk>/events/",
        processes.ProcessEventsView.as_view(),
        name="api-process-events",
    ),
    path(
        "processes/<uuid:pk>/rounds/",
        processes.ProcessRoundsView.as_view(),
        name="api-process-rounds",
    ),
    path(
        "processes/<uuid:pk>/cancel/",
        processes.ProcessCancelView.as_view(),
        name="api-process-cancel",
    ),
    path(
        "processes/<uuid:pk>/variables/",
        processes.ProcessVariablesView.as_view(),
        name="api-process-variables",
    ),
    path(
        "processes/<uuid:pk>/attachments/",
        attachments.ProcessAttachmentsView.as_view(),
        name="api-process-attachments",
    ),
    path(
        "tasks/<int:pk>/attachments/",
        attachments.TaskAttachmentsView.as_view(),
        name="api-task-attachments",
    ),
    path("events/", events.SeedEventView.as_view(), name="api-events"),
    path("messages/", events.MessageView.as_view(), name="api-messages"),
    path(
        "queues/<text:task_queue>/tasks/", events.QueueTasksView.as_view(), name="api-queue-tasks"
    ),
    path("queues/<text:task_queue>/lock/", events.QueueLockView.as_view(), name="api-queue-lock"),
    path(
        "queues/<text:task_queue>/tasks/<int:pk>/extend/",
        events.QueueTaskExtendView.as_view(),
        name="api-queue-task-extend",
    ),
    path(
        "queues/<text:task_queue>/tasks/<int:pk>/unlock/",
        events.QueueTaskUnlockView.as_view(),
        name="api-queue-task-unlock",
    ),
    path("inbox/", tasks.InboxView.as_view(), name="api-inbox"),
    path("tasks/<int:pk>/", tasks.TaskDetailView.as_view(), name="api-task"),
    path("tasks/<int:pk>/claim/", tasks.TaskClaimView.as_view(), name="api-task-claim"),
    path("tasks/<int:pk>/release/", tasks.TaskReleaseView.as_view(), name="api-task-release"),
    path("tasks/<int:pk>/complete/", tasks.TaskCompleteView.as_view(), name="api-task-complete"),
    path("tasks/<int:pk>/delegate/", tasks.TaskDelegateView.as_view(), name="api-task-delegate"),
    path("stats/trends/", stats.TrendsView.as_view(), name="api-stats-trends"),
    path("incidents/", operate.IncidentListView.as_view(), name="api-incidents"),
    path("tasks/<int:pk>/retry/", operate.TaskRetryView.as_view(), name="api-task-retry"),
    path("tasks/<int:pk>/skip/", operate.TaskSkipView.as_view(), name="api-task-skip"),
    path("tasks/<int:pk>/replay/", operate.TaskReplayView.as_view(), name="api-task-replay"),
    path("tasks/<int:pk>/reassign/", operate.TaskReassignView.as_view(), name="api-task-reassign"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    re_path(r"^.*$", not_found),
]
