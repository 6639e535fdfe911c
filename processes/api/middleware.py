"""Django-level errors under ``/api/`` in the API's JSON shape: 413, 404, 500 and friends."""

from __future__ import annotations

import logging
import re

from django.conf import settings
from django.core.exceptions import RequestDataTooBig

from processes.api.exceptions import error_response
from processes.spec import form_rules

logger = logging.getLogger("processes.api")

_GENERIC = {
    400: ("bad_request", "bad request"),
    403: ("forbidden", "forbidden"),
    404: ("not_found", "not found"),
    405: ("method_not_allowed", "method not allowed"),
    413: ("too_large", "the request body is over 1 MB"),
    500: ("server_error", "internal error"),
}


ATTACHMENTS_PATH = re.compile(r"/api/processes/[^/]+/attachments/")


class ApiErrorMiddleware:
    """Answer errors raised outside DRF (body too big, unknown URL, a bug) as JSON under /api/.

    It sits near the top so an oversized body is refused before any other middleware reads it.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path_info.startswith("/api/"):
            return self.get_response(request)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if request.path_info == "/api/processes/batch/":  # up to 10,000 items
            limit = settings.FLOWDESK_BATCH_MAX_BYTES
        elif ATTACHMENTS_PATH.fullmatch(request.path_info):  # a file, and a few fields
            limit = form_rules.MAX_FILE_BYTES + 64 * 1024
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return error_response(400, "bad_request", "invalid Content-Length")
        if limit is not None and length > limit:
            return error_response(413, "too_large", f"the request body is over {limit} bytes")
        response = self.get_response(request)
        content_type = response.get("Content-Type", "")
        if response.status_code >= 400 and "json" not in content_type:
            code, message = _GENERIC.get(
                response.status_code,
                (
                    "server_error" if response.status_code >= 500 else "error",
                    response.reason_phrase,
                ),
            )
            return error_response(response.status_code, code, message)
        return response

    def process_exception(self, request, exception):
        if not request.path_info.startswith("/api/"):
            return None
        if isinstance(exception, RequestDataTooBig):
            return error_response(413, "too_large", "the request body is over 1 MB")
        logger.exception("unhandled error on %s %s", request.method, request.path_info)
        return error_response(500, "server_error", "internal error")
