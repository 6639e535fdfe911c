"""Task instances (a step or a human task of one instance) and the rounds rework loops kept."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_fsm import FSMField, FSMModelMixin, transition

from processes.models.instances import (
    ProcessInstance,
    overdue_q,
)
from processes.models.states import (
    TaskState,
    TaskType,
)


class TaskInstanceQuerySet(models.QuerySet):
    def overdue(self, now=None):
        return self.filter(overdue_q(now))

    def due_for_wake(self, now):
        return self.filter(wake_at__lte=now)


class TaskInstance(FSMModelMixin, models.Model):
    # (task_process_name_unique leads with it: no index of its own)
    process = models.ForeignKey(
        ProcessInstance, on_delete=models.CASCADE, related_name="tasks", db_index=False
    )
    # The process's definition key, copied when the task is made: the inbox's filter and its counts
    # per process type read open tasks alone (one index), never a join to a million processes.
    definition_key = models.SlugField(max_length=100, db_index=False, editable=False)
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
        db_index=False,  # (a partial index below: service tasks have none)
    )
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="claimed_tasks",
        db_index=False,  # (a partial index below: service tasks have none)
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="decided_tasks",
        db_index=False,  # (a partial index below: service tasks have none)
    )
    on_behalf_of = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,  # shown with the task, never searched
        help_text="The absent person whose task this is (their substitute or role holds it).",
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
    message_name = models.CharField(
        max_length=200, blank=True, default="", help_text="MESSAGE: the message it waits for."
    )
    correlation_key = models.CharField(
        max_length=200, blank=True, default="", help_text="MESSAGE: the key that message carries."
    )
    locked_by = models.CharField(
        max_length=200,
        blank=True,
        default="",
        help_text="External task: the worker that holds it (POST /api/queues/{q}/lock/).",
    )
    lock_expires_at = models.DateTimeField(
        null=True, blank=True, help_text="External task: back in its queue after this moment."
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
            # The inbox's counts and its process-type filter: every column they read is in it, so
            # PostgreSQL answers from the index alone (an index-only scan).
            models.Index(
                fields=["candidate_role", "definition_key", "visibility", "assignee", "claimed_by"],
                name="task_open_human_listing",
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
            # The trends' approvals open past due of one definition, by due time and role.
            models.Index(
                fields=["definition_key", "due_at"],
                name="task_open_human_def_due",
                include=["candidate_role"],
                condition=Q(state="scheduled", type="HUMAN"),
            ),
            models.Index(
                fields=["task_queue", "scheduled_at"],
                name="task_external_queue",
                condition=Q(state="scheduled", type="SERVICE", handler=""),
            ),
            # Only the tasks a person holds, held or decided (service tasks are most rows).
            models.Index(
                fields=["decided_by", "-finished_at"],
                name="task_decided_by",
                condition=Q(decided_by__isnull=False),
            ),
            models.Index(
                fields=["assignee"], name="task_assignee", condition=Q(assignee__isnull=False)
            ),
            models.Index(
                fields=["claimed_by"], name="task_claimed_by", condition=Q(claimed_by__isnull=False)
            ),
            models.Index(fields=["state", "name"], name="task_state_name"),
            # The operations home: open human tasks by process (cases waiting for people, per
            # definition, joined in process order), and the open incidents oldest first.
            models.Index(
                fields=["process"],
                name="task_open_human_process",
                condition=Q(state="scheduled", type="HUMAN"),
            ),
            models.Index(
                fields=["finished_at", "id"],
                name="task_failed_since",
                condition=Q(state__in=["failed", "compensation_failed"]),
            ),
            # POST /api/messages/ finds the tasks waiting for one message.
            models.Index(
                fields=["message_name", "correlation_key"],
                name="task_waiting_message",
                condition=Q(state="scheduled", type="MESSAGE"),
            ),
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
        self.on_behalf_of = None
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
