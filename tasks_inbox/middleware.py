"""Activate the person's own language and time zone for the request (after authentication)."""

from __future__ import annotations

import zoneinfo

from django.utils import timezone, translation

from tasks_inbox import people


class PersonLocaleMiddleware:
    """The profile's language overrides the one LocaleMiddleware took from Accept-Language;
    its time zone replaces the site's for the request. Unset: both stay as they were."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        language, zone = people.preferences(user) if user and user.is_authenticated else ("", "")
        if language:
            translation.activate(language)
            request.LANGUAGE_CODE = translation.get_language()
        if zone:
            timezone.activate(zoneinfo.ZoneInfo(zone))
        try:
            return self.get_response(request)
        finally:
            if zone:
                timezone.deactivate()
