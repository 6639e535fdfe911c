"""Files on a case: one row per upload, never changed; the bytes are in the attachments storage."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from processes.models.instances import ProcessInstance
from processes.models.tasks import TaskInstance


class Attachment(models.Model):
    """A file someone attached to a process (for a task's form field, or to the case).

    The bytes are stored once per case under their SHA-256 (``blob``: ``<process>/<sha256>``):
    an upload never overwrites another, and the same file uploaded twice is two rows over one
    blob."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    process = models.ForeignKey(
        ProcessInstance, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    task = models.ForeignKey(
        TaskInstance, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    field = models.CharField(max_length=100, blank=True, help_text="The form field it was for.")
    name = models.CharField(max_length=200)
    content_type = models.CharField(max_length=100, help_text="Sniffed from its bytes.")
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    blob = models.CharField(max_length=300, help_text="Its name in the attachments storage.")
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    uploaded_by_label = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["process", "created_at"], name="attachment_process")]

    def __str__(self) -> str:
        return self.name
