"""What the accounting and bonus clients share: one httpx call, classified for the engine.

Timeouts, connection errors, 5xx and 429 raise ``RetryableStepError`` (the task's back-off
applies); any other 4xx raises ``PermanentStepError`` with the remote system's message; a 2xx
whose body is not what the contract says raises ``PermanentStepError`` too, before anything
reaches the process variables. Every call carries an ``Idempotency-Key`` header.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
from django.conf import settings

from processes.steps import PermanentStepError, RetryableStepError

USER_AGENT = "flowdesk/1.0"
EMPLOYEE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}\Z")
PERIOD_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])\Z")
CURRENCY_RE = re.compile(r"^[A-Z]{3}\Z")
USERNAME_RE = re.compile(r"^[\w.@+-]{1,150}\Z")


class InvalidResponse(ValueError):
    """The remote system answered 2xx with a body that breaks the contract."""


class ServiceClient:
    """An httpx client for one external system; settings are read when it is created."""

    system = "external"
    url_setting = ""
    token_setting = ""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        token: str | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = (base_url or getattr(settings, self.url_setting, "")).rstrip("/")
        self.token = token if token is not None else getattr(settings, self.token_setting, "")
        connect = connect_timeout or settings.FLOWDESK_HTTP_CONNECT_TIMEOUT
        read = read_timeout or settings.FLOWDESK_HTTP_READ_TIMEOUT
        self.timeout = httpx.Timeout(read, connect=connect)
        self.transport = transport

    def _client(self) -> httpx.Client:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return httpx.Client(timeout=self.timeout, headers=headers, transport=self.transport)

    def call(
        self,
        method: str,
        path: str,
        *,
        idempotency_key: str,
        json: dict | None = None,
        params: dict | None = None,
        validate: Callable[[Any], dict] | None = None,
    ) -> dict:
        """Make one call and return its validated JSON body; raise a step error otherwise."""
        if not self.base_url.startswith(("http://", "https://")):
            raise PermanentStepError(f"{self.url_setting} is not an http(s) URL: {self.base_url!r}")
        url = f"{self.base_url}/{path.lstrip('/')}"
        what = f"{self.system} system ({method} {url})"
        try:
            with self._client() as client:
                response = client.request(
                    method,
                    url,
                    json=json,
                    params=params,
                    headers={"Idempotency-Key": idempotency_key},
                )
        except httpx.TimeoutException as exc:
            raise RetryableStepError(f"{what} timed out: {type(exc).__name__}") from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise PermanentStepError(f"{self.url_setting} is not valid: {exc}") from None
        except httpx.HTTPError as exc:
            raise RetryableStepError(f"{what} unreachable: {exc or type(exc).__name__}") from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise RetryableStepError(f"{what} answered {status}: {remote_message(response)}")
        if status >= 400:
            raise PermanentStepError(
                f"{self.system} system refused the request ({status}): {remote_message(response)}"
            )
        if status >= 300:
            raise PermanentStepError(f"{what} answered an unexpected {status}")
        try:
            body = response.json()
        except ValueError:
            raise PermanentStepError(
                f"{what} returned a malformed response: not JSON ({_snippet(response.text)!r})"
            ) from None
        if validate is None:
            return body
        try:
            return validate(body)
        except InvalidResponse as exc:
            raise PermanentStepError(f"{what} returned a malformed response: {exc}") from None

    def post_for_employee(
        self,
        path: str,
        *,
        employee_id: str,
        period: str,
        idempotency_key: str,
        fields: Callable[[dict], dict],
        extra: dict | None = None,
    ) -> dict:
        """POST ``{employee_id, period}`` (and ``extra``); the answer must echo both, ``fields``
        reads the rest."""

        def validate(body) -> dict:
            body = require_object(body)
            expect_equal(body, "employee_id", employee_id)
            expect_equal(body, "period", period)
            return {"employee_id": employee_id, "period": period, **fields(body)}

        return self.call(
            "POST",
            path,
            json={"employee_id": employee_id, "period": period, **(extra or {})},
            idempotency_key=idempotency_key,
            validate=validate,
        )


def remote_message(response: httpx.Response) -> str:
    """The error message the remote system gave, from a JSON body or the text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("error", "detail", "message"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return _snippet(value)
    return _snippet(response.text) or response.reason_phrase or "no message"


def _snippet(text: str, limit: int = 300) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- validation of what comes back ----------------------------------------------------------------


def require_object(body: Any) -> dict:
    if not isinstance(body, dict):
        raise InvalidResponse(f"expected a JSON object, got {type(body).__name__}")
    return body


def field_str(body: dict, name: str, pattern: re.Pattern | None = None, max_len: int = 200) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise InvalidResponse(f"{name}: must be a non-empty string")
    if pattern is not None and not pattern.match(value):
        raise InvalidResponse(f"{name}: invalid value {_snippet(value, 40)!r}")
    return value


def field_amount(body: dict, name: str) -> str:
    """A money amount (number or decimal string), returned as a string with two decimals."""
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidResponse(f"{name}: must be a decimal amount")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise InvalidResponse(f"{name}: must be a decimal amount") from None
    if not amount.is_finite() or amount < 0 or amount > Decimal("1e9"):
        raise InvalidResponse(f"{name}: must be an amount from 0 to 1e9")
    return str(amount.quantize(Decimal("0.01")))


def expect_equal(body: dict, name: str, expected: str) -> None:
    if body.get(name) != expected:
        raise InvalidResponse(f"{name}: expected {expected!r}, got {body.get(name)!r}")
