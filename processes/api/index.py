"""``GET /api/``: where the API's resources are, as links (a client starts here)."""

from __future__ import annotations

from django.http import JsonResponse
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_http_methods

# (name in the answer, URL name, example arguments for a path that takes an id)
LINKS = (
    ("token", "api-token", None),
    ("definitions", "api-definitions", None),
    ("processes", "api-processes", None),
    ("process_batch", "api-process-batch", None),
    ("events", "api-events", None),
    ("inbox", "api-inbox", None),
    ("task", "api-task", "{id}"),
    ("incidents", "api-incidents", None),
    ("subscriptions", "api-subscriptions", None),
    ("schema", "api-schema", None),
    ("docs", "api-docs", None),
    ("redoc", "api-redoc", None),
)


def _href(request, name: str, placeholder: str | None) -> str | None:
    try:
        path = reverse(name, args=[0] if placeholder else None)
    except NoReverseMatch:  # a resource this build doesn't have
        return None
    href = request.build_absolute_uri(path)
    return href.replace("/0/", f"/{placeholder}/") if placeholder else href  # a URI template


@require_http_methods(["GET", "HEAD"])
def api_index(request):
    links = {}
    for key, name, placeholder in LINKS:
        href = _href(request, name, placeholder)
        if href is not None:
            links[key] = href
    return JsonResponse({"name": "Flowdesk API", "links": links})
