"""Read models projected from the event log (the dashboard), the cluster heartbeat and the
timer loop's lease."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from processes.models.states import (
    TaskType,
)


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
    # The task's due time and candidate role when projected (trends: late approvals per role).
    due_at = models.DateTimeField(null=True, blank=True)
    candidate_role = models.CharField(max_length=150, blank=True, default="")
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
            ),
            # The trends' periods: one definition's executions by completion time, every column
            # they read included (PostgreSQL answers from the index alone).
            models.Index(
                fields=["definition_key", "completed_at"],
                name="execution_def_completed",
                include=["task_type", "lead_seconds", "due_at", "candidate_role"],
            ),
        ]

    def __str__(self) -> str:
        return f"{self.definition_key}:{self.task_name} #{self.event_id}"


class TrendPeriod(models.Model):
    """One closed period's trends of one definition, as ``processes.trends`` first worked them
    out (all but the approvals still open past due, counted afresh on every request).

    Cases start, end and tasks finish "now": a closed period's figures don't change, except
    through a case reopened or removed later (not reflected here). Written only by
    ``processes.trends``; rows of another time zone are simply not read.
    """

    definition_key = models.CharField(max_length=100)
    by = models.CharField(max_length=5, help_text="month or week")
    time_zone = models.CharField(max_length=100)
    start = models.DateField(help_text="The period's first day.")
    figures = models.JSONField(help_text="processes.trends.Period's fields but start, late_open.")
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["definition_key", "by", "time_zone", "start"], name="trend_period_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.definition_key} {self.by} {self.start}"


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


class TimerLease(models.Model):
    """Who runs the timer loop: one holder at a time across every host (PostgreSQL).

    The holder renews ``expires_at`` (the database's clock, so hosts' clocks don't matter)
    every third of ``FLOWDESK_TIMER_LEASE`` seconds; once it expired, another supervisor takes
    it over. A row rather than a session advisory lock, so it works behind PgBouncer in
    transaction mode (``processes.supervisor.leader``).
    """

    name = models.CharField(max_length=50, primary_key=True)
    holder = models.CharField(max_length=150, help_text="Supervisor id and process id.")
    expires_at = models.DateTimeField()
    acquired_at = models.DateTimeField(help_text="When this holder took it.")

    def __str__(self) -> str:
        return f"{self.name}: {self.holder}"
