"""What every API view shares: JSON only, token/session auth, the one error shape, pagination and
``Idempotency-Key`` handling for POST."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from processes.api.authentication import FlowdeskTokenAuthentication
from processes.api.models import IdempotencyRecord
from processes.errors import Conflict, EngineError
from processes.negotiation import JSONOnlyNegotiation

MAX_JSON_DEPTH = 64
IDEMPOTENCY_TTL = timedelta(hours=24)
IDEMPOTENCY_STALE = timedelta(seconds=60)  # an in-flight record older than this was abandoned


class UnstorableJSON(ParseError):
    """Well-formed JSON holding a value PostgreSQL can't store; ``fields`` names where it is."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"JSON parse error - {path + ': ' if path else ''}{problem}")
        self.fields = {path or "non_field_errors": [problem]}


class StrictJSONParser(JSONParser):
    """JSON that PostgreSQL can store: no NUL, no lone surrogates, finite numbers, bounded depth."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None
        found = _json_problem(data)
        if found:
            raise UnstorableJSON(*found)
        return data


def _bad_string(value: str) -> str | None:
    if "\x00" in value:
        return "strings must not contain NUL (\\u0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "strings must be valid Unicode (no lone surrogates)"
    return None


def _json_problem(data) -> tuple[str, str] | None:
    """(path, problem) of the first value that can't be stored, the path dotted like the API's
    error fields (``input.who``, ``items.0.business_key``)."""
    stack = [(data, 0, "")]
    while stack:
        value, depth, path = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return path, f"nested deeper than {MAX_JSON_DEPTH} levels"
        if isinstance(value, str):
            problem = _bad_string(value)
            if problem:
                return path, problem
        elif isinstance(value, float):
            if not math.isfinite(value):
                return path, "numbers must be finite"
        elif isinstance(value, dict):
            for key, item in value.items():
                problem = _bad_string(key)
                if problem:
                    return path, f"keys: {problem}"
                stack.append((item, depth + 1, f"{path}.{key}" if path else key))
        elif isinstance(value, list):
            stack.extend(
                (item, depth + 1, f"{path}.{i}" if path else str(i)) for i, item in enumerate(value)
            )
    return None


class BpmnDocument(bytes):
    """A request body that is a BPMN 2.0 file (``Content-Type: application/xml``), unread."""


class BpmnParser(BaseParser):
    """Hand the XML body over as it came: ``processes.bpmn`` is the one reader of BPMN."""

    media_type = "application/xml"

    def parse(self, stream, media_type=None, parser_context=None):
        return BpmnDocument(stream.read() if stream is not None else b"")


class TextXmlParser(BpmnParser):
    media_type = "text/xml"


class BpmnXmlParser(BpmnParser):
    media_type = "application/bpmn+xml"


BPMN_PARSERS = [BpmnParser, TextXmlParser, BpmnXmlParser]


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 200


class IdempotencyKeyMismatch(EngineError):
    code = "idempotency_key_reused"
    status = 422


class _Replay(Exception):
    def __init__(self, response: Response):
        self.response = response


def _fingerprint(request) -> str:
    digest = hashlib.sha256()
    digest.update(request.method.encode())
    digest.update(b"\0" + request.get_full_path().encode("utf-8", "surrogatepass"))
    if request.content_type.startswith("multipart/form-data"):
        _multipart_fingerprint(request, digest)  # (the boundary differs from one try to the next)
    else:
        digest.update(b"\0" + request._request.body)
    return digest.hexdigest()


def _multipart_fingerprint(request, digest) -> None:
    """A form's fields and files (their bytes), in order of name: the same upload sent again
    is the same request whatever its boundary."""
    for name, value in sorted(request.data.lists()):
        digest.update(b"\0" + name.encode("utf-8", "surrogatepass"))
        for item in value:
            if hasattr(item, "chunks"):
                digest.update(b"\1" + (item.name or "").encode("utf-8", "surrogatepass"))
                for chunk in item.chunks():
                    digest.update(chunk)
                item.seek(0)
            else:
                digest.update(b"\2" + str(item).encode("utf-8", "surrogatepass"))


def _replay_response(record: IdempotencyRecord) -> Response:
    headers = {"Idempotent-Replayed": "true"}
    if record.location:
        headers["Location"] = record.location
    return Response(record.body, status=record.status, headers=headers)


def idempotency_begin(request, key: str):
    """Claim ``key`` for this request; return a stored answer to replay instead, if any."""
    if not key.strip() or len(key) > 255 or _bad_string(key):
        raise ValidationError({"Idempotency-Key": ["must be 1 to 255 characters"]})
    user = request.user
    fingerprint = _fingerprint(request)
    now = timezone.now()
    for _attempt in range(2):
        try:
            with transaction.atomic():
                return IdempotencyRecord.objects.create(
                    user=user, key=key, fingerprint=fingerprint, created_at=now
                ), None
        except IntegrityError:
            pass
        existing = IdempotencyRecord.objects.filter(user=user, key=key).first()
        if existing is None:
            continue
        expired = existing.created_at < now - IDEMPOTENCY_TTL
        abandoned = existing.status is None and existing.created_at < now - IDEMPOTENCY_STALE
        if expired or abandoned:
            IdempotencyRecord.objects.filter(pk=existing.pk).delete()
            continue
        if existing.fingerprint != fingerprint:
            raise IdempotencyKeyMismatch(
                "this Idempotency-Key was used for a different request",
                fields={"Idempotency-Key": ["already used with another method, path or body"]},
            )
        if existing.status is None:
            raise Conflict("a request with this Idempotency-Key is still in progress")
        return None, existing
    raise Conflict("a request with this Idempotency-Key is still in progress")


def idempotency_finish(record: IdempotencyRecord, response: Response) -> None:
    if response.status_code >= 500 or response.status_code in (401, 429):
        IdempotencyRecord.objects.filter(pk=record.pk).delete()
        return
    body = json.loads(JSONRenderer().render(response.data)) if response.data is not None else None
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        status=response.status_code, body=body, location=response.get("Location", "")[:500]
    )


class ApiView(APIView):
    """Base of every Flowdesk API view."""

    parser_classes = [StrictJSONParser]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JSONOnlyNegotiation
    metadata_class = None  # OPTIONS → 405: the OpenAPI schema describes every endpoint
    authentication_classes = [FlowdeskTokenAuthentication, SessionAuthentication]
    _idempotency_record: IdempotencyRecord | None = None

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        key = request.headers.get("Idempotency-Key")
        if request.method == "POST" and key is not None and request.user.is_authenticated:
            record, stored = idempotency_begin(request, key)
            if stored is not None:
                raise _Replay(_replay_response(stored))
            self._idempotency_record = record

    def handle_exception(self, exc):
        if isinstance(exc, _Replay):
            return exc.response
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        record, self._idempotency_record = self._idempotency_record, None
        if record is not None and isinstance(response, Response):
            idempotency_finish(record, response)
        return super().finalize_response(request, response, *args, **kwargs)

    def dispatch(self, request, *args, **kwargs):
        try:
            return super().dispatch(request, *args, **kwargs)
        except Exception:
            if self._idempotency_record is not None:
                IdempotencyRecord.objects.filter(pk=self._idempotency_record.pk).delete()
            raise
