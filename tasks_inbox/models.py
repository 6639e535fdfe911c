"""The inbox's one table: a person's language and time zone. Who may act on a task is
``processes.authority``'s rule over the task's columns."""

from __future__ import annotations

import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _


def validate_time_zone(value: str) -> None:
    """An IANA name Python knows ("Europe/Paris"); blank means the site's time zone."""
    if value and value not in zoneinfo.available_timezones():
        raise ValidationError(_("Unknown time zone: %(zone)s."), params={"zone": value})


class Profile(models.Model):
    """What a person reads the pages and notices in. Blank language: the browser's
    Accept-Language; blank time zone: the site's (FLOWDESK_TIME_ZONE)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="inbox_profile"
    )
    language = models.CharField(_("language"), max_length=10, blank=True, default="")
    time_zone = models.CharField(
        _("time zone"), max_length=64, blank=True, default="", validators=[validate_time_zone]
    )

    class Meta:
        verbose_name = _("profile")

    def __str__(self) -> str:
        return f"{self.user} ({self.language or '-'}, {self.time_zone or '-'})"
