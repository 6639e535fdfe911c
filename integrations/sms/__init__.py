"""The SMS seam, like Django's EMAIL_BACKEND: ``settings.FLOWDESK_SMS_BACKEND`` names the backend.

Backends: ``console`` (demo default: prints), ``locmem`` (tests: ``locmem.outbox``), ``file``
(JSON lines at ``FLOWDESK_SMS_FILE_PATH``, readable from another process) and ``twilio``.
"""

from __future__ import annotations

from django.conf import settings
from django.utils.module_loading import import_string

from integrations.sms.backends.base import BaseSmsBackend, SmsError


def get_backend(path: str | None = None, **kwargs) -> BaseSmsBackend:
    """Instantiate the configured backend (read at call time, never at import)."""
    path = path or settings.FLOWDESK_SMS_BACKEND
    try:
        cls = import_string(path)
    except ImportError as exc:
        raise SmsError(f"FLOWDESK_SMS_BACKEND {path!r} cannot be imported: {exc}") from None
    return cls(**kwargs)


def send_timeout(path: str | None = None) -> float:
    """The longest one send of the configured backend takes (its ``timeout``, in seconds)."""
    try:
        cls = import_string(path or settings.FLOWDESK_SMS_BACKEND)
    except ImportError:
        cls = BaseSmsBackend  # (sending fails, and says why)
    return float(getattr(cls, "timeout", BaseSmsBackend.timeout))


def send_sms(to: str, body: str) -> str:
    """Send one SMS with the configured backend; return the provider's id. Raises SmsError."""
    return get_backend().send(to, body)


__all__ = ["BaseSmsBackend", "SmsError", "get_backend", "send_sms", "send_timeout"]
