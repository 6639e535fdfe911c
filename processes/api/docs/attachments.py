"""OpenAPI of the files on a case."""

from drf_spectacular.utils import extend_schema, inline_serializer

from processes.api import schema as s
from processes.api import serializers as ser

_LIST = inline_serializer("AttachmentList", {"results": ser.AttachmentSerializer(many=True)})

process_attachments = extend_schema(
    tags=["processes"],
    summary="The files of a case",
    description=(
        "Every file attached to the case, oldest first, each with a signed `download_url` valid "
        "a few minutes. Readable by whoever reads one of its human tasks and by those who see "
        "the definition's processes; anyone else → 404."
    ),
    responses={200: _LIST, **s.READ_ERRORS},
)

task_attachments = extend_schema(
    tags=["tasks"],
    summary="The files of a task's case",
    description="As the case's list, for those who may read the task (404 if they can't see it).",
    responses={200: _LIST, **s.READ_ERRORS},
)

attachment_add = extend_schema(
    tags=["processes"],
    summary="Attach a file to a case",
    description=(
        "multipart/form-data with `file` (and `task` + `field` for a form's `file` field, whose "
        "`accept` and `max_size` apply; otherwise at most 10 MiB of a recognised type). The type "
        "is sniffed from the bytes. Refused with 400: too large, a type not accepted, a `name` "
        "with a path. Who may: whoever may decide one of the case's open tasks, and its "
        "operators. Recorded in the history (name, size, SHA-256, who); never overwritten."
    ),
    request={"multipart/form-data": ser.AttachmentUploadSerializer},
    responses={201: ser.AttachmentSerializer, **s.WRITE_ERRORS},
)
