"""Process definitions, instances, tasks and the append-only event log.

State fields are django-fsm fields with ``protected=True``: the only way a state changes is a
transition method below, called from ``processes.engine``.
"""

from __future__ import annotations

import dataclasses
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django_fsm import FSMField, FSMModelMixin, transition

from processes import spec as spec_module


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


# --- definitions ----------------------------------------------------------------------------------


class ProcessDefinitionQuerySet(models.QuerySet):
    def published(self):
        return self.filter(status=DefinitionStatus.PUBLISHED)


class ProcessDefinition(FSMModelMixin, models.Model):
    key = models.SlugField(max_length=100)
    version = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    component_name = models.CharField(
        max_length=200, blank=True, default="", help_text="The seed template's component_name."
    )
    description = models.TextField(blank=True, default="")
    spec = models.JSONField()
    status = FSMField(
        max_length=20,
        choices=DefinitionStatus.choices,
        default=DefinitionStatus.DRAFT,
        protected=True,
    )
    created_at = models.DateTimeField(default=timezone.now)
    published_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = ProcessDefinitionQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["key", "version"], name="definition_key_version_unique")
        ]
        indexes = [
            models.Index(fields=["key", "status", "-version"], name="definition_key_status"),
            models.Index(fields=["component_name", "status"], name="definition_component"),
        ]
        ordering = ["key", "-version"]
        permissions = [
            ("start_process", "Can start processes of this definition"),
            ("view_process", "Can see processes of this definition and their history"),
            ("operate_process", "Can send task events and cancel processes of this definition"),
            ("publish_definition", "Can publish new versions of this definition"),
            ("correct_variables", "Can correct the variables of processes of this definition"),
        ]

    def __str__(self) -> str:
        return f"{self.key} v{self.version}"

    def save(self, *args, **kwargs):
        if self.pk and self.status != DefinitionStatus.DRAFT:
            stored = type(self).objects.filter(pk=self.pk).values_list("spec", "status").first()
            if stored and stored[1] != DefinitionStatus.DRAFT and stored[0] != self.spec:
                raise ImmutableError(f"{self} is {stored[1]}: publish a new version instead")
        super().save(*args, **kwargs)

    def parsed(self) -> spec_module.ProcessSpec:
        """The spec as frozen dataclasses (cached per object)."""
        cached = getattr(self, "_parsed_spec", None)
        if cached is None:
            # Published specs were validated at publish time; don't re-check handlers here, so a
            # process keeps running even if a handler module is temporarily not installed.
            cached = spec_module.parse_or_raise(self.spec, known_handlers=spec_module.ANY_HANDLER)
            if cached.key != self.key:
                cached = dataclasses.replace(cached, key=self.key)
            self._parsed_spec = cached
        return cached

    @transition(field=status, source=DefinitionStatus.DRAFT, target=DefinitionStatus.PUBLISHED)
    def publish(self) -> None:
        self.published_at = timezone.now()

    @transition(field=status, source=DefinitionStatus.PUBLISHED, target=DefinitionStatus.RETIRED)
    def retire(self) -> None:
        pass


class DefinitionEventType(models.TextChoices):
    IMPORTED = "definition_imported", "Version stored"
    PUBLISHED = "definition_published", "Version published"
    RETIRED = "definition_retired", "Version retired"
    UPDATED = "definition_updated", "Draft edited"
    ARCHIVED = "processes_archived", "Closed processes archived and deleted (retention)"


class DefinitionEvent(AppendOnlyModel):
    """Who stored, published, retired or edited a definition version, and when: append-only."""

    definition = models.ForeignKey(
        ProcessDefinition, on_delete=models.PROTECT, related_name="audit"
    )
    type = models.CharField(max_length=40, choices=DefinitionEventType.choices)
    actor_type = models.CharField(max_length=10)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_label = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    data = models.JSONField(default=dict, blank=True)

    append_only_what = "definition events"

    class Meta:
        ordering = ["definition_id", "id"]
        indexes = [models.Index(fields=["definition", "id"], name="definition_event_def")]

    def __str__(self) -> str:
        return f"{self.definition} {self.type}"


class DefinitionComponent(models.Model):
    """Which definition key owns a seed ``component_name``: one key per component name, so seed
    events naming it can never reach another key's definition."""

    component_name = models.CharField(max_length=200, primary_key=True)
    key = models.SlugField(max_length=100)

    def __str__(self) -> str:
        return f"{self.component_name} -> {self.key}"


# --- instances ------------------------------------------------------------------------------------


class ProcessInstance(FSMModelMixin, models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    definition = models.ForeignKey(ProcessDefinition, on_delete=models.PROTECT, related_name="+")
    definition_key = models.SlugField(max_length=100, help_text="Copied from the definition.")
    business_key = models.CharField(max_length=200)
    state = FSMField(
        max_length=20, choices=ProcessState.choices, default=ProcessState.RUNNING, protected=True
    )
    business_status = models.CharField(max_length=200, blank=True, default="")
    current_stage = models.CharField(max_length=100, blank=True, default="")
    variables = models.JSONField(default=dict, blank=True)
    last_seq = models.PositiveIntegerField(default=0, help_text="Sequence of the last event.")
    started_by = models.CharField(max_length=200, blank=True, default="")
    started_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The person or API client who started it (separation of duties: initiator).",
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
    )
    parent_task = models.ForeignKey(
        "TaskInstance",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="children",
        help_text="That PROCESS task: it waits for this process.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="The spec's process deadline; cleared once the timer sweep has raised it.",
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
            models.Index(fields=["business_key"], name="process_business_key"),
            models.Index(fields=["business_status"], name="process_business_status"),
            models.Index(fields=["-created_at"], name="process_created"),
            # The timer sweep's process deadlines.
            models.Index(
                fields=["deadline_at"],
                name="process_deadline_at",
                condition=Q(deadline_at__isnull=False),
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
        source=[ProcessState.COMPLETED, ProcessState.FAILED, ProcessState.RUNNING],
        target=ProcessState.RUNNING,
    )
    def reopen(self) -> None:
        self.completed_at = None


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


class TaskInstanceQuerySet(models.QuerySet):
    def overdue(self, now=None):
        return self.filter(overdue_q(now))

    def due_for_wake(self, now):
        return self.filter(wake_at__lte=now)


class TaskInstance(FSMModelMixin, models.Model):
    process = models.ForeignKey(ProcessInstance, on_delete=models.CASCADE, related_name="tasks")
    stage = models.CharField(max_length=100)
    stage_index = models.PositiveIntegerField(default=0)
    name = models.CharField(max_length=100)
    type = models.CharField(max_length=10, choices=TaskType.choices)
    handler = models.CharField(max_length=200, blank=True, default="")
    task_queue = models.CharField(max_length=200, blank=True, default="")
    state = FSMField(
        max_length=20, choices=TaskState.choices, default=TaskState.PENDING, protected=True
    )
    attempts = models.PositiveIntegerField(default=0)
    execution = models.PositiveIntegerField(
        default=1, help_text="Bumped on replay; part of the idempotency key."
    )
    round = models.PositiveIntegerField(
        default=1, help_text="Rework round this execution belongs to (a send-back starts the next)."
    )
    result = models.JSONField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    candidate_role = models.CharField(max_length=150, blank=True, default="")
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_tasks",
    )
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="claimed_tasks",
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="decided_tasks",
    )
    visibility = models.CharField(
        max_length=20,
        blank=True,
        default="participants",
        help_text="The definition's visibility when the task opened (see processes.authority).",
    )
    participants = models.JSONField(
        default=list,
        blank=True,
        help_text="Ids of the people who held this task (assignee, claimant, delegate, decider).",
    )
    due_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    timed_out_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Its timeout/due passed with on_timeout 'incident': the incident lasts until "
        "the task is finished.",
    )
    compensation_order = models.PositiveIntegerField(
        null=True, blank=True, help_text="Cancelled process: 1 is compensated first (newest)."
    )
    wake_at = models.DateTimeField(
        null=True, blank=True, help_text="When the timer sweep must look at this task again."
    )
    scheduled_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = TaskInstanceQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["process", "name"], name="task_process_name_unique")
        ]
        indexes = [
            # The one timer index: the sweep selects wake_at <= now.
            models.Index(
                fields=["wake_at"], name="task_wake_at", condition=Q(wake_at__isnull=False)
            ),
            models.Index(
                fields=["candidate_role", "due_at"],
                name="task_open_human_role",
                condition=Q(state="scheduled", type="HUMAN"),
            ),
            models.Index(
                fields=["assignee", "due_at"],
                name="task_open_human_assignee",
                condition=Q(state="scheduled", type="HUMAN"),
            ),
            # The inbox sorted by age within a role, and the overdue filter/SLA breaches (due_at <
            # now over every role): both read only open human tasks.
            models.Index(
                fields=["candidate_role", "scheduled_at"],
                name="task_open_human_role_age",
                condition=Q(state="scheduled", type="HUMAN"),
            ),
            models.Index(
                fields=["due_at"],
                name="task_open_human_due",
                condition=Q(state="scheduled", type="HUMAN"),
            ),
            models.Index(
                fields=["task_queue", "scheduled_at"],
                name="task_external_queue",
                condition=Q(state="scheduled", type="SERVICE", handler=""),
            ),
            models.Index(fields=["decided_by", "-finished_at"], name="task_decided_by"),
            models.Index(fields=["state", "name"], name="task_state_name"),
        ]
        ordering = ["stage_index", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.state})"

    @property
    def is_external(self) -> bool:
        return self.type == TaskType.SERVICE and not self.handler

    @property
    def idempotency_key(self) -> str:
        """Stable for one execution of this task: the same on every retry and redelivery."""
        return f"{self.process_id}:{self.name}:{self.execution}"

    @property
    def is_overdue(self) -> bool:
        """``overdue_q`` for this one task, now."""
        return self.overdue_at(timezone.now())

    def overdue_at(self, now) -> bool:
        return bool(
            self.type == TaskType.HUMAN
            and self.state == TaskState.SCHEDULED
            and self.due_at
            and self.due_at < now
        )

    # Transitions. They change fields on the object only; the engine saves and logs them.

    @transition(field=state, source=TaskState.PENDING, target=TaskState.SCHEDULED)
    def schedule(self) -> None:
        self.scheduled_at = timezone.now()

    @transition(
        field=state, source=[TaskState.SCHEDULED, TaskState.RUNNING], target=TaskState.RUNNING
    )
    def start(self) -> None:
        self.attempts += 1
        self.started_at = timezone.now()

    @transition(field=state, source=TaskState.RUNNING, target=TaskState.SCHEDULED)
    def retry_later(self) -> None:
        """An attempt failed and attempts remain: wait for the back-off, then run again."""

    @transition(field=state, source=TaskState.RUNNING, target=TaskState.SCHEDULED)
    def requeue(self) -> None:
        """The worker's lease expired: give the step to another worker."""

    @transition(
        field=state, source=[TaskState.SCHEDULED, TaskState.RUNNING], target=TaskState.COMPLETED
    )
    def complete(self) -> None:
        self.finished_at = timezone.now()
        self.wake_at = None

    @transition(
        field=state, source=[TaskState.SCHEDULED, TaskState.RUNNING], target=TaskState.FAILED
    )
    def fail(self) -> None:
        self.finished_at = timezone.now()
        self.wake_at = None

    @transition(field=state, source=TaskState.FAILED, target=TaskState.SCHEDULED)
    def retry(self) -> None:
        self.scheduled_at = timezone.now()
        self.finished_at = None
        self.attempts = 0

    @transition(
        field=state,
        source=[TaskState.PENDING, TaskState.SCHEDULED, TaskState.FAILED],
        target=TaskState.SKIPPED,
    )
    def skip(self) -> None:
        self.finished_at = timezone.now()
        self.wake_at = None

    @transition(
        field=state,
        source=[TaskState.PENDING, TaskState.SCHEDULED, TaskState.RUNNING, TaskState.FAILED],
        target=TaskState.CANCELLED,
    )
    def cancel(self) -> None:
        self.finished_at = timezone.now()
        self.wake_at = None

    # Compensation of a completed task once its process is cancelled: the same attempt, lease and
    # back-off machinery as a step (``attempts``, ``wake_at``, ``scheduled_at``, ``last_error``).

    @transition(field=state, source=TaskState.COMPLETED, target=TaskState.COMPENSATING)
    def plan_compensation(self) -> None:
        self.attempts = 0
        self.last_error = ""
        self.scheduled_at = timezone.now()

    @transition(
        field=state,
        source=[TaskState.COMPENSATING, TaskState.COMPENSATION_RUNNING],
        target=TaskState.COMPENSATION_RUNNING,
    )
    def start_compensation(self) -> None:
        self.attempts += 1
        self.started_at = timezone.now()

    @transition(field=state, source=TaskState.COMPENSATION_RUNNING, target=TaskState.COMPENSATING)
    def retry_compensation_later(self) -> None:
        """An attempt failed (or its worker vanished) and attempts remain."""

    @transition(
        field=state,
        source=[TaskState.COMPENSATING, TaskState.COMPENSATION_RUNNING],
        target=TaskState.COMPENSATED,
    )
    def complete_compensation(self) -> None:
        self.finished_at = timezone.now()
        self.wake_at = None

    @transition(
        field=state,
        source=[TaskState.COMPENSATING, TaskState.COMPENSATION_RUNNING],
        target=TaskState.COMPENSATION_FAILED,
    )
    def fail_compensation(self) -> None:
        self.finished_at = timezone.now()
        self.wake_at = None

    @transition(field=state, source=TaskState.COMPENSATION_FAILED, target=TaskState.COMPENSATING)
    def retry_compensation(self) -> None:
        self.scheduled_at = timezone.now()
        self.finished_at = None
        self.attempts = 0

    @transition(
        field=state,
        source=[TaskState.COMPENSATING, TaskState.COMPENSATION_FAILED],
        target=TaskState.SKIPPED,
    )
    def skip_compensation(self) -> None:
        self.finished_at = timezone.now()
        self.wake_at = None

    @transition(field=state, source="*", target=TaskState.PENDING)
    def reset(self) -> None:
        """Replay: forget this task's run so it can be scheduled again."""
        self.execution += 1
        self.attempts = 0
        self.result = None
        self.last_error = ""
        self.claimed_by = None
        self.decided_by = None
        self.due_at = None
        self.escalated_at = None
        self.timed_out_at = None
        self.wake_at = None
        self.scheduled_at = None
        self.started_at = None
        self.finished_at = None


class TaskRound(models.Model):
    """One finished execution of a task that a rework loop ran again: what it was when the
    process was sent back (its decision, result and times), kept so that nothing is overwritten.

    Written only by ``processes.engine.rework``, in the transaction that sends the process back;
    the current execution stays on the ``TaskInstance``.
    """

    process = models.ForeignKey(ProcessInstance, on_delete=models.CASCADE, related_name="rounds")
    task = models.ForeignKey(TaskInstance, on_delete=models.CASCADE, related_name="rounds")
    task_name = models.CharField(max_length=100)
    round = models.PositiveIntegerField()
    execution = models.PositiveIntegerField()
    state = models.CharField(max_length=20, choices=TaskState.choices)
    result = models.JSONField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    attempts = models.PositiveIntegerField(default=0)
    scheduled_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["task", "execution"], name="task_round_execution")
        ]
        indexes = [models.Index(fields=["process", "round"], name="task_round_process")]
        ordering = ["process_id", "round", "id"]

    def __str__(self) -> str:
        return f"{self.task_name} round {self.round} (execution {self.execution})"


# --- the audit log --------------------------------------------------------------------------------


class EventType(models.TextChoices):
    PROCESS_STARTED = "process_started", "Process started"
    PROCESS_COMPLETED = "process_completed", "Process completed"
    PROCESS_FAILED = "process_failed", "Incident opened"
    PROCESS_RESUMED = "process_resumed", "Incident resolved"
    PROCESS_CANCELLED = "process_cancelled", "Process cancelled"
    PROCESS_REOPENED = "process_reopened", "Process reopened"
    PROCESS_SENT_BACK = "process_sent_back", "Sent back for rework"
    PROCESS_MIGRATED = "process_migrated", "Moved to another version"
    SUBPROCESS_STARTED = "subprocess_started", "Child process started"
    SUBPROCESS_FINISHED = "subprocess_finished", "Child process finished"
    STAGE_STARTED = "stage_started", "Stage started"
    STAGE_COMPLETED = "stage_completed", "Stage completed"
    VARIABLES_UPDATED = "variables_updated", "Variables updated"
    VARIABLES_CHANGED = "variables_changed", "Variables corrected"
    TASK_SCHEDULED = "task_scheduled", "Task scheduled"
    TASK_STARTED = "task_started", "Task started"
    TASK_COMPLETED = "task_completed", "Task completed"
    TASK_ATTEMPT_FAILED = "task_attempt_failed", "Task attempt failed (will retry)"
    TASK_FAILED = "task_failed", "Task failed"
    TASK_RETRIED = "task_retried", "Task retried"
    TASK_REQUEUED = "task_requeued", "Task lease expired, requeued"
    TASK_SKIPPED = "task_skipped", "Task skipped"
    TASK_CANCELLED = "task_cancelled", "Task cancelled"
    TASK_RESET = "task_reset", "Task reset for replay"
    TASK_DUPLICATE = "task_duplicate", "Duplicate event ignored"
    TASK_CLAIMED = "task_claimed", "Task claimed"
    TASK_RELEASED = "task_released", "Task released"
    TASK_DELEGATED = "task_delegated", "Task delegated"
    TASK_ESCALATED = "task_escalated", "Task escalated"
    TASK_REMINDED = "task_reminded", "Reminder sent"
    COMPENSATION_RUN = "compensation_run", "Compensation run"
    PROCESS_CANCELLING = "process_cancelling", "Process cancelling (compensating)"
    PROCESS_DEADLINE_PASSED = "process_deadline_passed", "Process deadline passed"
    TASK_TIMED_OUT = "task_timed_out", "Task deadline passed"
    COMPENSATION_SCHEDULED = "compensation_scheduled", "Compensation scheduled"
    COMPENSATION_STARTED = "compensation_started", "Compensation started"
    COMPENSATION_COMPLETED = "compensation_completed", "Compensation completed"
    COMPENSATION_ATTEMPT_FAILED = (
        "compensation_attempt_failed",
        "Compensation attempt failed (will retry)",
    )
    COMPENSATION_FAILED = "compensation_failed", "Compensation failed"
    COMPENSATION_REQUEUED = "compensation_requeued", "Compensation lease expired, requeued"
    COMPENSATION_RETRIED = "compensation_retried", "Compensation retried"
    COMPENSATION_SKIPPED = "compensation_skipped", "Compensation skipped"
    NOTIFICATION_SENT = "notification_sent", "Notification sent"
    NOTIFICATION_FAILED = "notification_failed", "Notification failed"


class ActorType(models.TextChoices):
    USER = "user", "User"
    API = "api", "API client"
    SYSTEM = "system", "System"
    WORKER = "worker", "Worker"


class ProcessEvent(AppendOnlyModel):
    """One row per thing that happened to a process: never updated, never deleted."""

    process = models.ForeignKey(ProcessInstance, on_delete=models.PROTECT, related_name="events")
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=40, choices=EventType.choices)
    task = models.ForeignKey(
        TaskInstance, null=True, blank=True, on_delete=models.PROTECT, related_name="events"
    )
    task_name = models.CharField(max_length=100, blank=True, default="")
    actor_type = models.CharField(max_length=10, choices=ActorType.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_label = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    data = models.JSONField(default=dict, blank=True)
    correlation_id = models.CharField(
        max_length=64,
        blank=True,
        default="",
        db_default="",  # rows written by fixed SQL that don't name it
        help_text="The X-Request-ID of the request (or the task chain) that caused it.",
    )
    caused_by = models.BigIntegerField(
        null=True, blank=True, help_text="The id of the event this one is a consequence of."
    )

    append_only_what = "process events"

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["process", "seq"], name="event_process_seq_unique")
        ]
        indexes = [
            models.Index(fields=["type", "created_at"], name="event_type_created"),
            models.Index(fields=["task", "seq"], name="event_task_seq"),
            models.Index(fields=["correlation_id"], name="event_correlation"),
        ]
        ordering = ["process_id", "seq"]

    def __str__(self) -> str:
        return f"#{self.seq} {self.type}"

    @property
    def actor_display(self) -> str:
        return self.actor_label or self.actor_type


# --- read models ----------------------------------------------------------------------------------


class TaskExecution(models.Model):
    """One completed task execution, projected from the event log for the dashboard.

    Written only by ``processes.projections`` (never by the engine, so the engine's hot path does
    not pay for it), one row per ``task_completed`` event that has a ``task_scheduled`` before it.
    The times are the event log's: the last ``task_scheduled`` and ``task_started`` before the
    completion; ``started_at`` is empty when the task was not started after that scheduling.
    """

    event_id = models.BigIntegerField(primary_key=True, help_text="The task_completed event.")
    process_id = models.UUIDField()
    process_created_at = models.DateTimeField()
    definition_key = models.CharField(max_length=100)
    definition_version = models.PositiveIntegerField()
    task_name = models.CharField(max_length=100)
    task_type = models.CharField(max_length=10, choices=TaskType.choices)
    scheduled_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField()
    lead_seconds = models.FloatField(help_text="scheduled -> completed")
    run_seconds = models.FloatField(null=True, blank=True, help_text="started -> completed")
    # The heat map's share of this execution, in ProjectionState.time_zone (PostgreSQL only):
    # whole days (every hour), then the first and the last partial hour of day, and
    # ``heat_full_hours`` whole hours from ``heat_full_hour`` on.
    heat_days = models.IntegerField(null=True, blank=True)
    heat_first_hour = models.SmallIntegerField(null=True, blank=True)
    heat_first_seconds = models.FloatField(null=True, blank=True)
    heat_last_hour = models.SmallIntegerField(null=True, blank=True)
    heat_last_seconds = models.FloatField(null=True, blank=True)
    heat_full_hour = models.SmallIntegerField(null=True, blank=True)
    heat_full_hours = models.IntegerField(null=True, blank=True)

    class Meta:
        indexes = [
            # The dashboard's window: the executions of one definition's instances started since.
            models.Index(
                fields=["definition_key", "process_created_at"], name="execution_def_created"
            )
        ]

    def __str__(self) -> str:
        return f"{self.definition_key}:{self.task_name} #{self.event_id}"


class ProjectionState(models.Model):
    """How far a projection has read the event log (see ``processes.projections``)."""

    name = models.CharField(max_length=100, primary_key=True)
    last_event_id = models.BigIntegerField(
        default=0, help_text="Every event up to this id is projected, except the missing ones."
    )
    missing = models.JSONField(
        default=list,
        blank=True,
        help_text="[id, xmax]: ids up to last_event_id not committed when read (PostgreSQL), "
        "and the snapshot xmax then; dropped once every transaction before xmax has ended.",
    )
    time_zone = models.CharField(
        max_length=100, blank=True, default="", help_text="The heat map's hours are in this zone."
    )
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.name} @ {self.last_event_id}"


# --- worker supervision ---------------------------------------------------------------------------


class ClusterHeartbeat(models.Model):
    """What one worker supervisor (``manage.py workers``) knows about the cluster it runs.

    One row per supervisor (``FLOWDESK_SUPERVISOR_ID``, the host name by default). The supervisor
    writes its state on every beat it sends; the beat's hook, in the cluster's monitor process,
    writes ``returned_seq`` / ``returned_at``; ``/healthz`` reads the rows.
    """

    class State(models.TextChoices):
        STARTING = "starting", "Starting"
        OK = "ok", "Heartbeat fresh"
        BUSY = "busy", "Heartbeat late, every worker busy with a step"
        STALLED = "stalled", "Stalled: restarting the cluster"
        STOPPED = "stopped", "Stopped"

    supervisor = models.CharField(max_length=100, primary_key=True)
    cluster = models.CharField(max_length=100, help_text="django-q2 cluster name (queue).")
    state = models.CharField(max_length=20, choices=State.choices, default=State.STARTING)
    pid = models.IntegerField(null=True, blank=True, help_text="The supervisor's process id.")
    tree_pgid = models.IntegerField(
        null=True, blank=True, help_text="Process group of the qcluster tree it runs."
    )
    tree_started_at = models.DateTimeField(null=True, blank=True)
    sent_seq = models.BigIntegerField(default=0)
    returned_seq = models.BigIntegerField(default=0)
    returned_at = models.DateTimeField(null=True, blank=True)
    stalled_since = models.DateTimeField(null=True, blank=True)
    restarts = models.PositiveIntegerField(default=0)
    checked_at = models.DateTimeField(default=timezone.now, help_text="The supervisor's last word.")

    def __str__(self) -> str:
        return f"{self.supervisor} ({self.state})"
