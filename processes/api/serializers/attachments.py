"""Files on a case: the upload's fields, and one file as the lists show it."""

from __future__ import annotations

from rest_framework import serializers


class AttachmentUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="The file (multipart/form-data).")
    name = serializers.CharField(
        required=False,
        max_length=200,
        help_text="Its name, if not the upload's (no path: `letter.pdf`).",
    )
    task = serializers.IntegerField(
        required=False, min_value=1, help_text="The open task whose form field it is for."
    )
    field = serializers.CharField(
        required=False, max_length=100, help_text="The `file` field of that task's form."
    )


class AttachmentSerializer(serializers.Serializer):
    """Given ``{"attachment": row, "download_url": link}``."""

    id = serializers.UUIDField(source="attachment.pk")
    name = serializers.CharField(source="attachment.name")
    content_type = serializers.CharField(source="attachment.content_type")
    size = serializers.IntegerField(source="attachment.size")
    sha256 = serializers.CharField(source="attachment.sha256")
    task = serializers.IntegerField(source="attachment.task_id", allow_null=True)
    field = serializers.CharField(source="attachment.field")
    uploaded_by = serializers.CharField(source="attachment.uploaded_by_label")
    created_at = serializers.DateTimeField(source="attachment.created_at")
    download_url = serializers.URLField(
        help_text="A signed link to the bytes, valid FLOWDESK_ATTACHMENT_LINK_SECONDS (5 min)."
    )
