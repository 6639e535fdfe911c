"""A person's language and time zone: read for a request, a notice or a page."""

from __future__ import annotations

import zoneinfo
from contextlib import contextmanager

from django.conf import settings
from django.utils import timezone, translation

from tasks_inbox.models import Profile


def supported(language: str) -> str:
    """``language`` if Flowdesk speaks it (fr-ca speaks fr), else ""."""
    codes = {code for code, _ in settings.LANGUAGES}
    language = (language or "").lower()
    if language in codes:
        return language
    base = language.split("-")[0]
    return base if base in codes else ""


def preferences(user) -> tuple[str, str]:
    """(language, time zone) the person chose; "" for what they left to the browser/site."""
    profile = Profile.objects.filter(user=user).only("language", "time_zone").first()
    if profile is None:
        return "", ""
    zone = profile.time_zone if profile.time_zone in zoneinfo.available_timezones() else ""
    return supported(profile.language), zone


@contextmanager
def speaking(user):
    """Texts written inside (a notice) in ``user``'s language and time zone; the site's when
    they chose none (no browser to ask outside a request)."""
    language, zone = preferences(user) if user is not None else ("", "")
    with translation.override(language or settings.LANGUAGE_CODE):
        if zone:
            with timezone.override(zoneinfo.ZoneInfo(zone)):
                yield
        else:
            yield
