"""Signed download links of attached files: a link is the permission, valid a few minutes
(``FLOWDESK_ATTACHMENT_LINK_SECONDS``), handed only to those ``authority.attachment_rights``
lets read the case."""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.urls import reverse

SALT = "flowdesk.attachment.download"


def signed_path(attachment) -> str:
    token = signing.TimestampSigner(salt=SALT).sign(str(attachment.pk))
    return reverse("attachment-download", args=[token])


def attachment_id(token: str) -> str | None:
    """The attachment a link names, or None when it is forged or expired."""
    try:
        return signing.TimestampSigner(salt=SALT).unsign(
            token, max_age=settings.FLOWDESK_ATTACHMENT_LINK_SECONDS
        )
    except signing.BadSignature:  # (SignatureExpired is one)
        return None
