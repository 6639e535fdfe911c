"""Files on a case: checked (``spec.file_problem``: name, size, sniffed type), stored once per
case under their SHA-256 in the attachments storage (``<process id>/<sha256>``), recorded in
the history (``attachment_added``: name, size, SHA-256, who), never overwritten. Who may add
one is ``authority.attachment_rights``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.core.files.storage import storages
from django.db import transaction

from processes import authority, events
from processes import spec as spec_module
from processes.engine._run import _lock, _Run
from processes.errors import Conflict, Forbidden, InvalidInput, NotFound
from processes.events import Actor
from processes.models import Attachment, TaskState, TaskType
from processes.spec import form_rules

STORAGE = "flowdesk_attachments"
HEAD = 4096  # bytes read to recognise the content type


@dataclass(frozen=True)
class Upload:
    """What was read from an uploaded file before any lock is taken."""

    file: object  # a Django File (UploadedFile): chunks(), seek()
    name: str
    size: int
    sha256: str
    content_type: str


def read_upload(file, name: str | None = None) -> Upload:
    """Hash and sniff ``file`` (its ``name`` unless ``name`` is given) in one pass."""
    digest, size, head = hashlib.sha256(), 0, b""
    file.seek(0)
    for chunk in file.chunks():
        if len(head) < HEAD:
            head += chunk[: HEAD - len(head)]
        digest.update(chunk)
        size += len(chunk)
        if size > form_rules.MAX_FILE_BYTES:
            break  # too large for any field: refused below, no need to read the rest
    file.seek(0)
    if size > form_rules.MAX_FILE_BYTES:
        size = max(size, getattr(file, "size", 0) or 0)  # the real size, for the message
    chosen = file.name if name is None else name
    return Upload(file, chosen, size, digest.hexdigest(), form_rules.sniff(head))


def file_field(task_spec, name: str):
    """The ``file`` field ``name`` of a task's form, or InvalidInput."""
    found = next((f for f in task_spec.form if f.name == name), None)
    if found is None or found.type != "file":
        raise InvalidInput(
            f"{task_spec.name} has no file field {name!r}",
            fields={"field": [f"not a file field of {task_spec.name}'s form"]},
        )
    return found


def attach(run: _Run, upload: Upload, *, actor: Actor, task=None, field=None) -> Attachment:
    """Check, store and record one file in the run's transaction; InvalidInput naming the
    problem (under ``file``, or ``data.<field>`` for a form's field)."""
    problem = spec_module.file_problem(
        field, name=upload.name, size=upload.size, content_type=upload.content_type
    )
    if problem:
        where = f"data.{field.name}" if field is not None else "file"
        raise InvalidInput(problem, fields={where: [problem]})
    storage = storages[STORAGE]
    # One folder per case (under the process row's lock): retention deletes a case's folder
    # knowing no other case shares its files, and no upload comes after (the row is gone).
    blob = f"{run.process.pk}/{upload.sha256}"
    if not storage.exists(blob):
        blob = storage.save(blob, upload.file)  # (a rolled-back upload leaves its blob: reused)
    user = actor.user if actor.user is not None and actor.user.pk else None
    attachment = Attachment.objects.create(
        process=run.process,
        task=task,
        field=field.name if field is not None else "",
        name=upload.name,
        content_type=upload.content_type,
        size=upload.size,
        sha256=upload.sha256,
        blob=blob,
        uploaded_by=user,
        uploaded_by_label=actor.label[:150],
    )
    events.attachment_added(log=run.log, actor=actor, attachment=attachment, task=task)
    return attachment


def attachment_add(
    *, process_id, actor: Actor, file, name: str | None = None, task_id=None, field: str = ""
) -> Attachment:
    """Attach ``file`` to a case, for a form's file ``field`` of its open task ``task_id`` (its
    ``accept`` and ``max_size`` apply) or to the case as a whole (the default limits)."""
    upload = read_upload(file, name)
    with transaction.atomic():
        run = _lock(process_id)
        run.actor = actor
        read, add = authority.attachment_rights(
            actor.user, run.process, spec=run.spec, tasks=run.tasks
        )
        if not read:
            raise NotFound(f"process {process_id} not found")
        if not add:
            raise Forbidden("you may not add files to this case")
        task, spec_field = None, None
        if task_id is not None or field:
            task = next((t for t in run.tasks.values() if str(t.pk) == str(task_id)), None)
            if task is None or task.type != TaskType.HUMAN:
                raise InvalidInput("no such task", fields={"task": ["not a task of this case"]})
            if task.state != TaskState.SCHEDULED:
                raise Conflict(f"task {task.name!r} is already {task.state}")
            if field:
                spec_field = file_field(run.task_spec(task), field)
        attachment = attach(run, upload, actor=actor, task=task, field=spec_field)
        run.save()
    return attachment


def reference_problems(run: _Run, task_spec, clean: dict) -> dict[str, list[str]]:
    """Each file field's value names a file of this case that fits the field."""
    errors: dict[str, list[str]] = {}
    for f in task_spec.form:
        if f.type != "file" or f.name not in clean:
            continue
        found = Attachment.objects.filter(pk=clean[f.name], process=run.process).first()
        if found is None:
            errors[f"data.{f.name}"] = ["must be the id of a file attached to this case"]
            continue
        problem = spec_module.file_problem(
            f, name=found.name, size=found.size, content_type=found.content_type
        )
        if problem:
            errors[f"data.{f.name}"] = [problem]
    return errors


def unknown_files(process, spec, changes: dict) -> dict[str, list[str]]:
    """A correction's values for ``file`` fields name files of this case."""
    errors: dict[str, list[str]] = {}
    for path, value in changes.items():
        field = spec_module.declared_field(spec, path)
        if (
            field is not None
            and field.type == "file"
            and not Attachment.objects.filter(pk=value, process=process).exists()
        ):
            errors[path] = ["must be the id of a file attached to this case"]
    return errors
