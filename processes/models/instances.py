"""Process instances, and what "overdue" means (one home for it)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django_fsm import FSMField, FSMModelMixin, transition

from processes.models.definitions import (
    ProcessDefinition,
)
from processes.models.states import (
    ACTIVE_PROCESS_STATES,
    ProcessState,
    TaskState,
    TaskType,
)


class ProcessInstance(FSMModelMixin, models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # (process_def_state and process_def_created lead with these: no index of their own)
    definition = models.ForeignKey(
        ProcessDefinition, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    definition_key = models.SlugField(
        max_length=100, help_text="Copied from the definition.", db_index=False
    )
    business_key = models.CharField(max_length=200)
    state = FSMField(
        max_length=20, choices=ProcessState.choices, default=ProcessState.RUNNING, protected=True
    )
    business_status = models.CharField(max_length=200, blank=True, default="")
    current_stage = models.CharField(max_length=100, blank=True, default="")
    variables = models.JSONField(default=dict, blank=True)
    last_seq = models.PositiveIntegerField(default=0, help_text="Sequence of the last event.")
    last_hash = models.CharField(
        max_length=64, blank=True, default="", db_default="", help_text="The last event's hash."
    )
    started_by = models.CharField(max_length=200, blank=True, default="")
    started_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The person or API client who started it (separation of duties: initiator).",
        db_index=False,  # (process_started_by below: a partial index)
    )
    unique_ever = models.BooleanField(
        default=False,
        help_text="Started under business_key_unique 'ever': no second instance of this key.",
    )
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="children",
        help_text="The process whose PROCESS task started this one.",
        db_index=False,  # (process_parent below: a partial index, most processes have none)
    )
    parent_task = models.ForeignKey(
        "TaskInstance",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="children",
        help_text="That PROCESS task: it waits for this process.",
        db_index=False,  # (process_parent_task below)
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="The spec's process deadline; cleared once the timer sweep has raised it.",
    )
    search_text = models.TextField(
        blank=True,
        default="",
        db_default="",
        help_text="What the case is found by (spec.search_text): its business key and its "
        "definition's searchable variables, case-folded. On PostgreSQL a trigram index "
        "(process_search_trgm, made by its migration: not a portable index) serves "
        "partial matches.",
    )

    class Meta:
        constraints = [
            # The seed's business_ref_no names one live instance per process.
            models.UniqueConstraint(
                fields=["definition_key", "business_key"],
                condition=Q(state__in=["running", "failed"]),
                name="process_active_business_key_unique",
            ),
            # A definition saying business_key_unique "ever" runs a business key once, whatever
            # became of the first instance (a paid salary case is never paid again).
            models.UniqueConstraint(
                fields=["definition_key", "business_key"],
                condition=Q(unique_ever=True),
                name="process_business_key_once",
            ),
        ]
        indexes = [
            models.Index(fields=["state", "-created_at"], name="process_state_created"),
            models.Index(fields=["definition_key", "-created_at"], name="process_def_created"),
            models.Index(fields=["definition", "state"], name="process_def_state"),
            # The operations home: the active cases only, by id (joined to their open human
            # tasks in id order) with their definition and state (counted without the table).
            models.Index(
                fields=["id", "definition", "state"],
                name="process_active",
                condition=Q(state__in=["running", "failed"]),
            ),
            models.Index(fields=["business_key"], name="process_business_key"),
            models.Index(fields=["business_status"], name="process_business_status"),
            models.Index(fields=["-created_at"], name="process_created"),
            # The trends' ended cases per period (completed, cancelled, lead times): one
            # definition's ended instances by end time, answered from the index alone.
            models.Index(
                fields=["definition_key", "completed_at"],
                name="process_def_ended",
                include=["state", "created_at"],
                condition=Q(completed_at__isnull=False),
            ),
            # The timer sweep's process deadlines.
            models.Index(
                fields=["deadline_at"],
                name="process_deadline_at",
                condition=Q(deadline_at__isnull=False),
            ),
            # References most rows don't have: only the rows that do.
            models.Index(
                fields=["started_by_user"],
                name="process_started_by",
                condition=Q(started_by_user__isnull=False),
            ),
            models.Index(
                fields=["parent"], name="process_parent", condition=Q(parent__isnull=False)
            ),
            models.Index(
                fields=["parent_task"],
                name="process_parent_task",
                condition=Q(parent_task__isnull=False),
            ),
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.definition_key}:{self.business_key}"

    def get_absolute_url(self) -> str:
        return reverse("admin:processes_processinstance_change", args=[self.pk])

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_PROCESS_STATES

    @transition(field=state, source=ProcessState.RUNNING, target=ProcessState.COMPLETED)
    def complete(self) -> None:
        self.completed_at = timezone.now()
        self.deadline_at = None  # met: out of the timer index

    @transition(field=state, source=ProcessState.RUNNING, target=ProcessState.FAILED)
    def open_incident(self) -> None:
        pass

    @transition(field=state, source=ProcessState.FAILED, target=ProcessState.RUNNING)
    def resolve_incident(self) -> None:
        pass

    @transition(
        field=state,
        source=[ProcessState.RUNNING, ProcessState.FAILED],
        target=ProcessState.CANCELLED,
    )
    def cancel(self) -> None:
        self.completed_at = timezone.now()
        self.deadline_at = None

    @transition(
        field=state,
        source=[ProcessState.RUNNING, ProcessState.FAILED],
        target=ProcessState.CANCELLING,
    )
    def begin_cancel(self) -> None:
        """Cancelled, but completed tasks must be compensated first (newest first)."""
        self.deadline_at = None

    @transition(field=state, source=ProcessState.CANCELLING, target=ProcessState.CANCELLED)
    def finish_cancel(self) -> None:
        """Every compensation is done or skipped."""
        self.completed_at = timezone.now()

    @transition(
        field=state,
        source=[ProcessState.RUNNING, ProcessState.FAILED, ProcessState.CANCELLING],
        target=ProcessState.COMPENSATED,
    )
    def finish_compensation(self) -> None:
        """A task failed for good under ``on_failure: compensate`` and every compensation is
        done or skipped (or there was nothing to undo)."""
        self.completed_at = timezone.now()
        self.deadline_at = None

    @transition(
        field=state,
        source=[ProcessState.COMPLETED, ProcessState.FAILED, ProcessState.RUNNING],
        target=ProcessState.RUNNING,
    )
    def reopen(self) -> None:
        self.completed_at = None


class ArchivedBusinessKey(models.Model):
    """A business key that stays taken after retention archived and deleted its process: the
    process was started under ``business_key_unique: "ever"`` (a paid salary case is never
    paid again, archived or not). Written in the archiving transaction, read by the start's
    existing-instance lookup (``db.engine.existing_instance``)."""

    definition_key = models.SlugField(max_length=100, db_index=False)
    business_key = models.CharField(max_length=200)
    process_id = models.UUIDField(help_text="The archived process (no longer a row).")
    definition_version = models.PositiveIntegerField()
    state = models.CharField(max_length=20, choices=ProcessState.choices)
    business_status = models.CharField(max_length=200, blank=True, default="")
    completed_at = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(default=timezone.now)
    archive_file = models.CharField(
        max_length=500, help_text="Where its archive line is: the file in the archive storage."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["definition_key", "business_key"], name="archived_business_key_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.definition_key}:{self.business_key} (archived)"


def overdue_q(now=None, prefix: str = "") -> Q:
    """The one definition of "overdue": an open human task whose due time has passed.

    ``prefix`` reaches the task from another model (``"tasks__"`` from an instance).
    ``TaskInstance.is_overdue`` says the same of one loaded task (a test checks they agree).
    """
    return Q(
        **{
            f"{prefix}type": TaskType.HUMAN,
            f"{prefix}state": TaskState.SCHEDULED,
            f"{prefix}due_at__lt": now or timezone.now(),
        }
    )
