"""Refuse a request whose URL holds a NUL character, before any view sees it.

PostgreSQL can't compare text with NUL in it: a filter value or search term with ``%00`` would
end as a 500 deep in a query. One rule for every page (admin filters, inbox, API query
parameters): 400 with what is wrong (the API's middleware gives it the API's error shape).
"""

from __future__ import annotations

from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import ValidationError
from django.http import HttpResponseBadRequest
from django.template.loader import render_to_string

from processes.db.core import MAX_DB_INT


class RefuseNulMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path_info or any(
            "\x00" in key or any("\x00" in value for value in values)
            for key, values in request.GET.lists()
        ):
            return HttpResponseBadRequest(
                "NUL characters (%00) are not allowed in a URL.", content_type="text/plain"
            )
        return self.get_response(request)


class RefuseBadAdminSelectionMiddleware:
    """Refuse an admin action whose selected rows can't be ids of the list's model (text where
    a number belongs, a 5,000-digit number, a NUL): the admin would hand them to the database
    and answer 500. The admin's own checkboxes never send such a value: 400, saying which."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        model_admin = getattr(view_func, "model_admin", None)
        if model_admin is None or request.method != "POST":
            return None
        field = model_admin.model._meta.pk
        for value in request.POST.getlist(ACTION_CHECKBOX_NAME):
            if not _may_be_pk(field, value):
                shown = value[:20] + ("…" if len(value) > 20 else "")
                return HttpResponseBadRequest(
                    f"Nothing done: {shown!r} is not the id of a "
                    f"{model_admin.model._meta.verbose_name}.",
                    content_type="text/plain",
                )
        return None


def _may_be_pk(field, value: str) -> bool:
    if len(value) > 100 or "\x00" in value:
        return False
    try:
        python = field.to_python(value)
    except (ValidationError, ValueError, TypeError):
        return False
    return not isinstance(python, int) or -MAX_DB_INT - 1 <= python <= MAX_DB_INT


EXPLANATIONS = {
    400: "The request could not be understood. Go back and try again.",
    405: "This address answers a form's button, not a visit. Go back to the page and use the "
    "button there.",
    413: "What you sent is too large.",
}


class StyledErrorMiddleware:
    """Give a page to every 4xx answer that has none (Django's 405 is blank): the site's own
    error page with what happened and a way back. The API answers in its JSON shape instead
    (``processes.api.middleware``)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            400 <= response.status_code < 500
            and not response.streaming
            and not response.content.strip()
            and not request.path_info.startswith("/api/")
        ):
            status = response.status_code
            response.content = render_to_string(
                "4xx.html",
                {
                    "reason": response.reason_phrase,
                    "explanation": EXPLANATIONS.get(status, "This request can't be answered."),
                },
                request=request,
            )
            response["Content-Type"] = "text/html; charset=utf-8"
        return response
