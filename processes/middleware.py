"""Refuse a request whose URL holds a NUL character, before any view sees it.

PostgreSQL can't compare text with NUL in it: a filter value or search term with ``%00`` would
end as a 500 deep in a query. One rule for every page (admin filters, inbox, API query
parameters): 400 with what is wrong (the API's middleware gives it the API's error shape).
"""

from __future__ import annotations

from django.http import HttpResponseBadRequest


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
