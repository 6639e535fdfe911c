"""The states and kinds every model shares, and the append-only base of the history tables."""

from __future__ import annotations

from django.db import models
from django.utils.translation import pgettext_lazy


class DefinitionStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    PUBLISHED = "published", "Published"
    RETIRED = "retired", "Retired"


# The labels of ProcessState and TaskState are the one word each state is shown with: every
# screen (inbox, admin, dashboard, diagram) and the API docs (the OpenAPI enum descriptions) read
# them, through ``state_word`` for a raw value; a test renders each screen in each state.


class ProcessState(models.TextChoices):
    RUNNING = "running", pgettext_lazy("state", "running")
    # a task failed for good: an open incident, other branches go on
    FAILED = "failed", pgettext_lazy("state", "incident")
    COMPLETED = "completed", pgettext_lazy("state", "completed")
    CANCELLING = "cancelling", pgettext_lazy("state", "cancelling")  # compensations undo tasks
    CANCELLED = "cancelled", pgettext_lazy("state", "cancelled")
    # A task failed for good under ``"on_failure": "compensate"``: the completed tasks were undone.
    COMPENSATED = "compensated", pgettext_lazy("state", "compensated")


ACTIVE_PROCESS_STATES = (ProcessState.RUNNING, ProcessState.FAILED)
# Undone or being undone: nothing is replayed (a replay would reopen what was undone).
UNDONE_PROCESS_STATES = (ProcessState.CANCELLING, ProcessState.CANCELLED, ProcessState.COMPENSATED)


class TaskType(models.TextChoices):
    SERVICE = "SERVICE", "Service"
    HUMAN = "HUMAN", "Human"
    PROCESS = "PROCESS", "Sub-process"
    TIMER = "TIMER", "Timer"
    MESSAGE = "MESSAGE", "Message"


class TaskState(models.TextChoices):
    PENDING = "pending", pgettext_lazy("state", "not started")
    # for a person (HUMAN), a worker or an outside system
    SCHEDULED = "scheduled", pgettext_lazy("state", "waiting")
    RUNNING = "running", pgettext_lazy("state", "running")
    COMPLETED = "completed", pgettext_lazy("state", "completed")
    FAILED = "failed", pgettext_lazy("state", "failed")
    SKIPPED = "skipped", pgettext_lazy("state", "skipped")
    CANCELLED = "cancelled", pgettext_lazy("state", "cancelled")
    # A completed task of a cancelled process, undone by its compensation handler (newest first).
    COMPENSATING = "compensating", pgettext_lazy("state", "compensation waiting")
    COMPENSATION_RUNNING = "compensation_running", pgettext_lazy("state", "compensating")
    COMPENSATED = "compensated", pgettext_lazy("state", "compensated")
    COMPENSATION_FAILED = "compensation_failed", pgettext_lazy("state", "compensation failed")


def state_word(choices: type[models.TextChoices], value: str) -> str:
    """The word ``value`` of ``choices`` (ProcessState or TaskState) is shown with; an unknown
    value (an old export, a state added later) as it is."""
    try:
        return str(choices(value).label)
    except ValueError:
        return str(value)


DONE_TASK_STATES = (TaskState.COMPLETED, TaskState.SKIPPED)
OPEN_TASK_STATES = (TaskState.SCHEDULED, TaskState.RUNNING)
OPEN_COMPENSATION_STATES = (
    TaskState.COMPENSATING,
    TaskState.COMPENSATION_RUNNING,
    TaskState.COMPENSATION_FAILED,
)


class ImmutableError(Exception):
    """Raised when code tries to change what must never change (events, published specs)."""


class AppendOnlyQuerySet(models.QuerySet):
    """Bulk update/delete refused: the rows are history (the database trigger refuses them too)."""

    def update(self, **kwargs):
        raise ImmutableError(f"{self.model.append_only_what} are append-only")

    def delete(self):
        raise ImmutableError(f"{self.model.append_only_what} are append-only")

    _raw_delete = delete


class AppendOnlyModel(models.Model):
    """A row is written once and never changed or deleted through the ORM."""

    append_only_what = "rows"

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ImmutableError(f"{self.append_only_what} are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableError(f"{self.append_only_what} are append-only")
