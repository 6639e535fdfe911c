"""Absences: a person away from a day to a day, and who covers their tasks meanwhile."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone


class AbsenceQuerySet(models.QuerySet):
    def on(self, day):
        """Absences that cover ``day`` (both ends included)."""
        return self.filter(starts_on__lte=day, ends_on__gte=day)


class Absence(models.Model):
    """One person's absence. While it lasts, the tasks they would hold go to ``substitute`` (or
    to the task's role when there is none, or the substitute may not take a task).

    Written only by ``processes.engine.absences``; ``applied_at`` says when the tasks they held
    when it began were handed over (the timer sweep does it once, or saving does when it has
    begun already).
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="absences", db_index=False
    )
    starts_on = models.DateField()
    ends_on = models.DateField()
    substitute = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="substitutions",
    )
    note = models.CharField(max_length=200, blank=True, default="")
    applied_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = AbsenceQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_on__gte=F("starts_on")), name="absence_ends_after_start"
            ),
            models.CheckConstraint(
                condition=~Q(substitute=F("user")), name="absence_substitute_not_self"
            ),
        ]
        indexes = [
            # "is this person away today?" (assignment) and "my absences" (the inbox page)
            models.Index(fields=["user", "ends_on"], name="absence_user_ends"),
            # the sweep: absences begun whose open tasks were not handed over yet
            models.Index(
                fields=["starts_on"], name="absence_unapplied", condition=Q(applied_at__isnull=True)
            ),
        ]
        ordering = ["-starts_on", "-id"]

    def __str__(self) -> str:
        return f"{self.user} away {self.starts_on}–{self.ends_on}"
