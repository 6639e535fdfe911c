"""The words of the SMS alerts: an incident, an overdue task, a digest of those held back.

They go to every on-call admin alike, so they are written in the site's language
(``FLOWDESK_LANGUAGE``), whoever's request opened the incident.
"""

from __future__ import annotations

import functools

from django.conf import settings
from django.urls import NoReverseMatch, reverse
from django.utils import timezone, translation
from django.utils.translation import gettext, ngettext

from integrations.models import SmsMessage

ERROR_CHARS = 160
DIGEST_CHARS = 480  # the digest's list of incidents (three concatenated SMS)


def in_site_language(compose):
    """SMS alerts go to every on-call admin alike: in the site's language (FLOWDESK_LANGUAGE),
    whoever's request opened the incident."""

    @functools.wraps(compose)
    def wrapper(*args, **kwargs):
        with translation.override(settings.LANGUAGE_CODE):
            return compose(*args, **kwargs)

    return wrapper


@in_site_language
def compose_digest(messages: list[SmsMessage]) -> str:
    """ "[Flowdesk] 12 more incidents since 10:04: salary E1, task pay failed: …; … <link>"."""
    since = timezone.localtime(messages[0].created_at)
    items = []
    for message in messages:
        text = message.body.removeprefix("[Flowdesk] ").split(" http", 1)[0]
        items.append(text if len(text) <= 80 else text[:79] + "…")
    listed = ""
    for count, item in enumerate(items):
        more = "; " + gettext("and %(count)d more") % {"count": len(items) - count}
        more = more if count else ""
        if len(listed) + len(item) + 2 > DIGEST_CHARS - len(more):
            listed += "; " + gettext("and %(count)d more") % {"count": len(items) - count}
            break
        listed += ("; " if listed else "") + item
    head = ngettext(
        "%(count)d more incident since %(since)s",
        "%(count)d more incidents since %(since)s",
        len(messages),
    ) % {"count": len(messages), "since": f"{since:%H:%M}"}
    return f"[Flowdesk] {head}: {listed}. {_incidents_link()}"


def _incidents_link() -> str:
    try:
        path = reverse("admin:integrations_incident_changelist")
    except NoReverseMatch:
        path = "/admin/integrations/incident/"
    return settings.FLOWDESK_BASE_URL.rstrip("/") + path


@in_site_language
def compose_message(process, task, error: str, *, overdue: bool = False) -> str:
    error = " ".join((error or "unknown error").split())
    if len(error) > ERROR_CHARS:
        error = error[: ERROR_CHARS - 1] + "…"
    words = {
        "definition": process.definition_key,
        "key": process.business_key,
        "task": task.name,
        "error": error,
    }
    if overdue:
        text = gettext("Overdue: %(definition)s %(key)s, task %(task)s is %(error)s") % words
    else:
        text = gettext("Incident: %(definition)s %(key)s, task %(task)s failed: %(error)s") % words
    return f"[Flowdesk] {text} {process_link(process.pk)}"


def process_link(process_id) -> str:
    try:
        path = reverse("admin:processes_processinstance_change", args=[process_id])
    except NoReverseMatch:
        path = f"/admin/processes/processinstance/{process_id}/change/"
    return settings.FLOWDESK_BASE_URL.rstrip("/") + path
