"""The states and kinds every model shares, and the append-only base of the history tables."""

from __future__ import annotations

from django.db import models


class DefinitionStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    PUBLISHED = "published", "Published"
    RETIRED = "retired", "Retired"


class ProcessState(models.TextChoices):
    RUNNING = "running", "Running"
    FAILED = "failed", "Failed (open incident)"
    COMPLETED = "completed", "Completed"
    CANCELLING = "cancelling", "Cancelling (compensations running)"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_PROCESS_STATES = (ProcessState.RUNNING, ProcessState.FAILED)


class TaskType(models.TextChoices):
    SERVICE = "SERVICE", "Service"
    HUMAN = "HUMAN", "Human"
    PROCESS = "PROCESS", "Sub-process"


class TaskState(models.TextChoices):
    PENDING = "pending", "Pending"
    SCHEDULED = "scheduled", "Scheduled"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
    CANCELLED = "cancelled", "Cancelled"
    # A completed task of a cancelled process, undone by its compensation handler (newest first).
    COMPENSATING = "compensating", "Compensation scheduled"
    COMPENSATION_RUNNING = "compensation_running", "Compensation running"
    COMPENSATED = "compensated", "Compensated"
    COMPENSATION_FAILED = "compensation_failed", "Compensation failed"


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
