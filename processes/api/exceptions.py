"""One JSON error shape for the whole API: ``{"error": {"code", "message", "fields"}}``.

``fields`` maps a field path (``input``, ``data.amount``, ``items.0.name``) to its messages.
Engine errors keep their status and code; a definition that does not validate also lists
``errors: [{path, message}]``.
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

from processes import spec as spec_module
from processes.errors import EngineError

logger = logging.getLogger(__name__)


def error_body(code: str, message: str, fields: dict | None = None, **extra) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}, **extra}}


def error_response(status: int, code: str, message: str, fields=None, **extra) -> JsonResponse:
    """A plain Django response in the API's error shape (middleware and URL fallbacks)."""
    return JsonResponse(error_body(code, message, fields, **extra), status=status)


def flatten_errors(detail, prefix: str = "") -> dict[str, list[str]]:
    """Turn DRF's nested error detail into ``{"a.b.0.c": ["message", ...]}``."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = "" if key in ("non_field_errors", "__all__") else str(key)
            path = f"{prefix}.{name}" if prefix and name else (prefix or name)
            for sub_path, messages in flatten_errors(value, path).items():
                out.setdefault(sub_path, []).extend(messages)
    elif isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            out.setdefault(prefix or "non_field_errors", []).extend(str(i) for i in detail)
        else:
            for index, item in enumerate(detail):
                if item:
                    path = f"{prefix}.{index}" if prefix else str(index)
                    for sub_path, messages in flatten_errors(item, path).items():
                        out.setdefault(sub_path, []).extend(messages)
    elif detail not in (None, ""):
        out.setdefault(prefix or "non_field_errors", []).append(str(detail))
    return out


def _drf_code(exc: drf.APIException) -> str:
    return {
        drf.ValidationError: "invalid",
        drf.ParseError: "parse_error",
        drf.AuthenticationFailed: "authentication_failed",
        drf.NotAuthenticated: "not_authenticated",
        drf.PermissionDenied: "forbidden",
        drf.NotFound: "not_found",
        drf.MethodNotAllowed: "method_not_allowed",
        drf.NotAcceptable: "not_acceptable",
        drf.UnsupportedMediaType: "unsupported_media_type",
        drf.Throttled: "throttled",
    }.get(type(exc), getattr(exc, "default_code", "error"))


def exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: map engine, spec and DRF errors to the one error shape."""
    if isinstance(exc, spec_module.SpecValidationError):
        errors = [e.as_dict() for e in exc.errors]
        fields: dict[str, list[str]] = {}
        for e in errors:
            fields.setdefault(e["path"] or "$", []).append(e["message"])
        return Response(
            error_body(
                "invalid_definition",
                f"the definition has {len(errors)} problem(s)",
                fields,
                errors=errors,
            ),
            status=400,
        )
    if isinstance(exc, EngineError):
        return Response(error_body(exc.code, exc.message, exc.fields), status=exc.status)
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body("too_large", "the request body is over 1 MB"), status=413)
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()
    if not isinstance(exc, drf.APIException):
        return None  # a bug: the middleware answers 500 in the same shape and logs it
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))
    if isinstance(exc, drf.ValidationError):
        fields = flatten_errors(exc.detail)
        message = "the request is not valid"
        if list(fields) == ["non_field_errors"]:
            message = "; ".join(fields["non_field_errors"])
        return Response(error_body("invalid", message, fields), status=400, headers=headers)
    detail = exc.detail
    if getattr(exc, "fields", None):  # a parse error that knows where (api.base.UnstorableJSON)
        return Response(error_body(_drf_code(exc), str(detail), exc.fields), status=400)
    message = str(detail) if not isinstance(detail, dict | list) else exc.default_detail
    return Response(
        error_body(_drf_code(exc), str(message)), status=exc.status_code, headers=headers
    )
