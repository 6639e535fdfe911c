"""What django-axes needs from us: the client address, and the plain answer to a locked-out login."""

from __future__ import annotations

import math

from django.conf import settings
from django.shortcuts import render

from processes.api.exceptions import error_response


def client_ip(request) -> str:
    """The caller's address: the proxy's last ``X-Forwarded-For`` hop when a TLS proxy is
    configured (``FLOWDESK_PROXY_SSL_HEADER``), else the socket's peer."""
    if getattr(settings, "SECURE_PROXY_SSL_HEADER", None):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        if hops:
            return hops[-1]
    return request.META.get("REMOTE_ADDR", "")


def _minutes() -> int:
    return max(1, math.ceil(float(settings.AXES_COOLOFF_TIME) * 60))


def lockout_response(request, original_response=None, credentials=None):
    """429 with one plain sentence: JSON in the API's error shape, a page for the login form."""
    minutes = _minutes()
    message = (
        f"Too many failed logins for this account from your address: try again in {minutes} "
        "minutes, or ask an administrator to unlock it."
    )
    if request.path.startswith("/api/"):
        response = error_response(429, "too_many_attempts", message)
    else:
        response = render(request, "registration/locked_out.html", {"message": message}, status=429)
    response["Retry-After"] = str(minutes * 60)
    return response
