"""History exports (CSV and JSON) of one instance or of a list of instances, streamed."""

from __future__ import annotations

import csv
import json

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.http import StreamingHttpResponse

from processes.models import ProcessEvent, ProcessInstance

CSV_COLUMNS = [
    "process_id",
    "definition",
    "version",
    "business_key",
    "seq",
    "created_at",
    "occurred_at",
    "type",
    "task",
    "actor_type",
    "actor",
    "data",
    "correlation_id",
    "caused_by",
]
CHUNK = 500


def export_limit() -> int:
    return getattr(settings, "FLOWDESK_ADMIN_EXPORT_LIMIT", 10_000)


def _process_dict(p: ProcessInstance) -> dict:
    return {
        "id": str(p.pk),
        "definition": p.definition_key,
        "version": p.definition.version,
        "business_key": p.business_key,
        "state": p.state,
        "business_status": p.business_status,
        "current_stage": p.current_stage,
        "created_at": p.created_at,
        "completed_at": p.completed_at,
    }


def _event_dict(e: ProcessEvent) -> dict:
    """An event as exported (in the order of the CSV's columns after the process's)."""
    return {
        "seq": e.seq,
        "created_at": e.created_at,
        "occurred_at": e.occurred_at,
        "type": e.type,
        "task": e.task_name,
        "actor_type": e.actor_type,
        "actor": e.actor_display,
        "data": e.data,
        "correlation_id": e.correlation_id,
        "caused_by": e.caused_by,
    }


def _chunks(process_ids: list):
    for i in range(0, len(process_ids), CHUNK):
        ids = process_ids[i : i + CHUNK]
        processes = {
            p.pk: p for p in ProcessInstance.objects.filter(pk__in=ids).select_related("definition")
        }
        events: dict = {pk: [] for pk in ids}
        for e in ProcessEvent.objects.filter(process_id__in=ids).order_by("process_id", "seq"):
            events[e.process_id].append(e)
        for pk in ids:
            if pk in processes:
                yield processes[pk], events[pk]


class _Echo:
    def write(self, value):
        return value


def _csv_rows(process_ids):
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for process, events in _chunks(process_ids):
        head = [
            process.pk,
            process.definition_key,
            process.definition.version,
            process.business_key,
        ]
        for e in events:
            data = json.dumps(e.data, cls=DjangoJSONEncoder, sort_keys=True)
            row = {**_event_dict(e), "created_at": e.created_at.isoformat(), "data": data}
            yield writer.writerow(head + list(row.values()))


def _json_chunks(process_ids):
    yield '{"processes": ['
    first = True
    for process, events in _chunks(process_ids):
        item = {**_process_dict(process), "events": [_event_dict(e) for e in events]}
        yield ("" if first else ",\n") + json.dumps(item, cls=DjangoJSONEncoder)
        first = False
    yield "]}\n"


def history_response(process_ids: list, fmt: str, filename: str, truncated: bool = False):
    """A streamed download of the events of ``process_ids`` (in that order)."""
    if fmt == "csv":
        response = StreamingHttpResponse(_csv_rows(process_ids), content_type="text/csv")
    else:
        response = StreamingHttpResponse(_json_chunks(process_ids), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
    if truncated:
        response["X-Flowdesk-Truncated"] = f"first {export_limit()} instances"
    return response
