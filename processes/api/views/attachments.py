"""Files on a case: upload (multipart), the lists of a case and of a task, and the signed
download link every list hands out."""

from __future__ import annotations

from django.http import FileResponse, Http404
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from processes import attachment_links, authority, engine, selectors
from processes.api import serializers as ser
from processes.api.base import ApiView
from processes.api.docs import attachments as docs
from processes.api.views.common import actor_of, validated
from processes.errors import Forbidden, NotFound
from processes.models import Attachment, ProcessInstance, TaskInstance

INLINE_TYPES = ("application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp")


def _listing(request, process_id) -> Response:
    items = [
        {
            "attachment": a,
            "download_url": request.build_absolute_uri(attachment_links.signed_path(a)),
        }
        for a in selectors.attachments_of(process_id)
    ]
    return Response({"results": ser.AttachmentSerializer(items, many=True).data})


def _rights(user, process) -> tuple[bool, bool]:
    tasks = {t.name: t for t in TaskInstance.objects.filter(process=process)}
    return authority.attachment_rights(user, process, spec=process.definition.parsed(), tasks=tasks)


class ProcessAttachmentsView(ApiView):
    parser_classes = [MultiPartParser]

    @docs.process_attachments
    def get(self, request, pk):
        process = ProcessInstance.objects.select_related("definition").filter(pk=pk).first()
        if process is None or not _rights(request.user, process)[0]:
            raise NotFound(f"process {pk} not found")
        return _listing(request, process.pk)

    @docs.attachment_add
    def post(self, request, pk):
        data = validated(ser.AttachmentUploadSerializer, request.data)
        attachment = engine.attachment_add(
            process_id=pk,
            actor=actor_of(request),
            file=data["file"],
            name=data.get("name"),
            task_id=data.get("task"),
            field=data.get("field", ""),
        )
        link = request.build_absolute_uri(attachment_links.signed_path(attachment))
        item = {"attachment": attachment, "download_url": link}
        return Response(ser.AttachmentSerializer(item).data, status=201)


class TaskAttachmentsView(ApiView):
    @docs.task_attachments
    def get(self, request, pk):
        task, rights = selectors.human_task_for(request.user, pk)
        if not rights.read:
            raise Forbidden("only those who read this task see its case's files")
        return _listing(request, task.process_id)


@require_GET
@xframe_options_sameorigin  # the task page shows a PDF in an <object>
def download(request, token):
    """The file a signed link names (404 once the link has expired or when it is forged)."""
    found = attachment_links.attachment_id(token)
    attachment = Attachment.objects.filter(pk=found).first() if found else None
    if attachment is None:
        raise Http404("This link has expired: open the task again for a new one.")
    response = FileResponse(
        selectors.attachment_blob(attachment),
        content_type=attachment.content_type,
        as_attachment=attachment.content_type not in INLINE_TYPES,
        filename=attachment.name,
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response
