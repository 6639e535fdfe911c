"""Process definitions: versions, their audit rows, and which key owns a component name."""

from __future__ import annotations

import dataclasses

from django.conf import settings
from django.db import models
from django.utils import timezone
from django_fsm import FSMField, FSMModelMixin, transition

from processes import spec as spec_module
from processes.models.states import (
    AppendOnlyModel,
    DefinitionStatus,
    ImmutableError,
)


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


class ScheduledStart(models.Model):
    """One occurrence of a definition's ``schedule`` (``engine.schedules``): started, skipped
    (``catch_up``) or refused. Unique per definition and business key: each occurrence starts
    once, whichever host's timer loop sees it and however often."""

    definition_key = models.SlugField(max_length=100)
    schedule_index = models.PositiveIntegerField(
        help_text="Its entry in the definition's schedule."
    )
    due_at = models.DateTimeField(help_text="The cron moment.")
    business_key = models.CharField(max_length=200)
    outcome = models.CharField(max_length=20)  # started | skipped | error
    error = models.TextField(blank=True, default="")
    process = models.ForeignKey(
        "processes.ProcessInstance",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["definition_key", "business_key"], name="scheduled_start_once"
            )
        ]
        indexes = [
            models.Index(
                fields=["definition_key", "schedule_index", "-due_at"], name="scheduled_start_last"
            )
        ]

    def __str__(self) -> str:
        return f"{self.definition_key} {self.business_key} ({self.outcome})"
