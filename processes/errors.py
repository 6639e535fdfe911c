"""Domain errors of the engine. The API, inbox and admin map them to their own responses."""

from __future__ import annotations


class EngineError(Exception):
    code = "engine_error"
    status = 400

    def __init__(self, message: str, *, fields: dict | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class NotFound(EngineError):
    code = "not_found"
    status = 404


class Conflict(EngineError):
    """The event does not fit the current state (completing a pending task, deciding a closed one)."""

    code = "conflict"
    status = 409


class InvalidInput(EngineError):
    code = "invalid"
    status = 400


class Forbidden(EngineError):
    code = "forbidden"
    status = 403
