"""Correlation: which request (or task chain) and which event caused what the engine records.

Two context variables, read by ``processes.events`` when it appends an event:

- ``correlation_id``: the ``X-Request-ID`` of the HTTP request (``RequestIdMiddleware``; one is
  generated when the header is missing or unusable, and echoed in the response), carried into the
  django-q2 tasks queued while it is set (``processes.queue.enqueue`` adds it to the task; the
  worker's ``pre_execute`` receiver binds it again). A transaction with none (a command, a
  schedule) gets one of its own.
- ``caused_by``: the id of the event whose consequence this work is (a service step run by a
  worker: the ``task_scheduled`` event that queued it).
"""

from __future__ import annotations

import contextvars
import re
import uuid
from contextlib import contextmanager

correlation_id: contextvars.ContextVar[str] = contextvars.ContextVar(
    "flowdesk_correlation_id", default=""
)
caused_by: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "flowdesk_caused_by", default=None
)

HEADER = "X-Request-ID"
TASK_KWARG = "_flowdesk_context"  # the key a queued task carries the context under
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,64}$")


def new_id() -> str:
    return uuid.uuid4().hex


def usable(value) -> str:
    """``value`` as a correlation id, or "" when it is not one (too long, odd characters)."""
    return value if isinstance(value, str) and REQUEST_ID_RE.match(value) else ""


def current() -> dict:
    """What a queued task carries on (empty when nothing is bound)."""
    found = {}
    if correlation_id.get():
        found["correlation_id"] = correlation_id.get()
    if caused_by.get() is not None:
        found["caused_by"] = caused_by.get()
    return found


@contextmanager
def bound(*, correlation: str | None = None, cause: int | None = None):
    """Bind a correlation id and/or a causing event for the duration of the block."""
    tokens = []
    if correlation is not None:
        tokens.append((correlation_id, correlation_id.set(correlation)))
    if cause is not None:
        tokens.append((caused_by, caused_by.set(cause)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class RequestIdMiddleware:
    """Bind the request's ``X-Request-ID`` (or a new one) and echo it in the response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = usable(request.headers.get(HEADER)) or new_id()
        request.request_id = request_id
        with bound(correlation=request_id):
            response = self.get_response(request)
        response[HEADER] = request_id
        return response


# --- django-q2: the worker binds what the task carries --------------------------------------------

_task_tokens: list = []


def task_pre_execute(sender=None, func=None, task=None, **kwargs) -> None:
    """``pre_execute`` receiver: take the carried context out of the task's kwargs and bind it
    (a task without one gets a correlation id of its own)."""
    carried = {}
    if task is not None and isinstance(task.get("kwargs"), dict):
        carried = task["kwargs"].pop(TASK_KWARG, None) or {}
    correlation = usable(carried.get("correlation_id")) or new_id()
    cause = carried.get("caused_by")
    _task_tokens.append(
        (
            correlation_id.set(correlation),
            caused_by.set(cause if isinstance(cause, int) else None),
        )
    )


def task_post_execute(sender=None, **kwargs) -> None:
    """``post_execute_in_worker`` receiver: unbind what ``task_pre_execute`` bound."""
    while _task_tokens:
        correlation_token, cause_token = _task_tokens.pop()
        caused_by.reset(cause_token)
        correlation_id.reset(correlation_token)
