"""Mail settings from the environment (read by ``config/settings.py``).

``FLOWDESK_EMAIL_URL``: ``smtp://user:password@host:587?tls=1`` (or ``?ssl=1``), ``smtps://``,
``console://`` or ``locmem://``; else the usual ``EMAIL_HOST``, ``EMAIL_PORT``,
``EMAIL_HOST_USER``, ``EMAIL_HOST_PASSWORD``, ``EMAIL_USE_TLS``, ``EMAIL_USE_SSL``.
"""

from __future__ import annotations

import os
import sys
from urllib.parse import parse_qs, unquote, urlparse

SMTP = "django.core.mail.backends.smtp.EmailBackend"
BACKENDS = {
    "smtp": SMTP,
    "smtps": SMTP,
    "console": "django.core.mail.backends.console.EmailBackend",
    "locmem": "django.core.mail.backends.locmem.EmailBackend",
}
YES = {"1", "true", "yes", "on"}


def email_settings(url: str) -> dict:
    """Django's ``EMAIL_*`` settings: from ``url`` (``FLOWDESK_EMAIL_URL``) when it is set, else
    from the ``EMAIL_*`` variables. An unknown scheme stops the start with a clear message."""
    if not url:
        return {
            "EMAIL_BACKEND": SMTP,
            "EMAIL_HOST": os.environ.get("EMAIL_HOST", "localhost"),
            "EMAIL_PORT": int(os.environ.get("EMAIL_PORT", "25")),
            "EMAIL_HOST_USER": os.environ.get("EMAIL_HOST_USER", ""),
            "EMAIL_HOST_PASSWORD": os.environ.get("EMAIL_HOST_PASSWORD", ""),
            "EMAIL_USE_TLS": os.environ.get("EMAIL_USE_TLS", "0").strip().lower() in YES,
            "EMAIL_USE_SSL": os.environ.get("EMAIL_USE_SSL", "0").strip().lower() in YES,
        }
    parsed = urlparse(url)
    query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
    if parsed.scheme not in BACKENDS:
        sys.exit(
            f"error: FLOWDESK_EMAIL_URL: unknown scheme {parsed.scheme!r}: smtp, smtps, console or locmem"
        )
    return {
        "EMAIL_BACKEND": BACKENDS[parsed.scheme],
        "EMAIL_HOST": parsed.hostname or "localhost",
        "EMAIL_PORT": parsed.port or (465 if parsed.scheme == "smtps" else 25),
        "EMAIL_HOST_USER": unquote(parsed.username or ""),
        "EMAIL_HOST_PASSWORD": unquote(parsed.password or ""),
        "EMAIL_USE_TLS": query.get("tls", "0").lower() in YES,
        "EMAIL_USE_SSL": parsed.scheme == "smtps" or query.get("ssl", "0").lower() in YES,
    }
