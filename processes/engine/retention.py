"""Retention: archive closed processes past their definition's ``retention``, then delete them.

A completed or cancelled process whose ``completed_at`` is older than its definition version's
``retention`` (``"P7Y"``, ``"P90D"``) is due. ``processes_archive`` takes a batch of due
processes and, for each batch:

1. checks each one with ``history.differences`` (``verify_history``): a process whose stored
   state its events don't rebuild is left alone and reported — an archive must be provable;
2. writes one JSON line per process (the row, its tasks, every event, and the proof: the
   verification, the event count, the last seq and the SHA-256 of the events) to the archive
   storage (``STORAGES["flowdesk_archive"]``: a directory or an S3-compatible bucket);
3. reads the file back from the storage and rebuilds each exported process from its exported
   events: the file must hash as written and every line must agree with itself;
4. only then, in one transaction with the rows locked, deletes what it exported — skipping any
   process that changed meanwhile (reopened by a replay, a new event) — through the one purge
   path the append-only trigger allows, and records a ``processes_archived`` definition event.
   The business keys of processes started under ``business_key_unique: "ever"`` stay reserved
   (``ArchivedBusinessKey``, written in that transaction): a later start answers with the
   archived case and starts nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from uuid import UUID

from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from processes import events, history, hooks, selectors
from processes.db import engine as db_engine
from processes.events import Actor, chain
from processes.models import (
    ArchivedBusinessKey,
    DefinitionEventType,
    ProcessDefinition,
    ProcessEvent,
    ProcessInstance,
    TaskInstance,
)

FORMAT = "flowdesk-archive/1"
CLOSED = selectors.CLOSED_STATES
STORAGE = "flowdesk_archive"


@dataclass
class ArchiveReport:
    """What one run did: files written, processes archived and deleted, and what it skipped."""

    files: list[str] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    bytes: int = 0
    deleted: dict[str, int] = field(default_factory=dict)


class ArchiveError(Exception):
    """The archive read back from the storage is not what was written: nothing is deleted."""


def due(*, now=None, definition_key: str | None = None):
    """The closed processes past their definition version's retention (``selectors``)."""
    return selectors.due_for_archiving(now=now or timezone.now(), definition_key=definition_key)


def processes_archive(
    *, actor: Actor, now=None, definition_key: str | None = None, batch: int = 200, limit=None
) -> ArchiveReport:
    """Archive and delete every due process (at most ``limit``), ``batch`` per file."""
    report = ArchiveReport()
    stamp = (now or timezone.now()).strftime("%Y%m%dT%H%M%S")
    seen: set = set()
    while limit is None or len(report.archived) < limit:
        size = batch if limit is None else min(batch, limit - len(report.archived))
        ids = list(
            due(now=now, definition_key=definition_key)
            .exclude(pk__in=seen)
            .values_list("pk", flat=True)[:size]
        )
        if not ids:
            break
        seen.update(ids)
        _archive_batch(
            ids, actor=actor, stamp=f"{stamp}-{len(report.files) + 1:04d}", report=report
        )
    return report


def export_line(process: ProcessInstance) -> tuple[dict, list[str]]:
    """One process as its archive line, and what ``verify_history`` says about it."""
    problems = history.differences(process)
    tasks = list(TaskInstance.objects.filter(process=process).order_by("id"))
    rows = list(ProcessEvent.objects.filter(process=process).order_by("seq"))
    event_dicts = [_row(e) for e in rows]
    return {
        "format": FORMAT,
        "process": _row(process),
        "definition": {"key": process.definition_key, "version": process.definition.version},
        "tasks": [_row(t) for t in tasks],
        "events": event_dicts,
        "proof": {
            "verify_history": problems,
            "events": len(rows),
            "last_seq": rows[-1].seq if rows else 0,
            "events_sha256": _digest(event_dicts),
        },
    }, problems


def check_line(line: dict, business_statuses: history.BusinessStatuses) -> list[str]:
    """What an exported line says that its own events don't (empty: the export proves itself)."""
    problems = []
    event_dicts = line["events"]
    if _digest(event_dicts) != line["proof"]["events_sha256"]:
        problems.append("events differ from their digest")
    if len(event_dicts) != line["proof"]["events"]:
        problems.append("event count differs from the proof")
    broken = chain.first_broken([_event_of(e) for e in event_dicts])
    if broken:
        problems.append(broken)
    snap = history.rebuild(
        [
            SimpleNamespace(type=e["type"], data=e["data"], task_name=e["task_name"])
            for e in event_dicts
        ],
        business_statuses,
    )
    row = line["process"]
    for name in ("state", "current_stage", "business_status", "variables"):
        if getattr(snap, name) != row[name]:
            problems.append(
                f"{name}: exported {row[name]!r}, its events say {getattr(snap, name)!r}"
            )
    for task in line["tasks"]:
        if snap.tasks.get(task["name"], "pending") != task["state"]:
            problems.append(f"task {task['name']}: exported state differs from its events")
    return problems


def _event_of(row: dict) -> SimpleNamespace:
    """An exported event as ``chain`` reads one (its times parsed back)."""
    moments = {
        name: dt.datetime.fromisoformat(row[name].replace("Z", "+00:00")) if row.get(name) else None
        for name in ("created_at", "occurred_at")
    }
    return SimpleNamespace(**{**row, **moments, "hash": row.get("hash", "")})


def _archive_batch(ids, *, actor: Actor, stamp: str, report: ArchiveReport) -> None:
    processes = list(
        ProcessInstance.objects.filter(pk__in=ids).select_related("definition").order_by("pk")
    )
    lines, exported = [], {}
    for process in processes:
        line, problems = export_line(process)
        if problems:
            report.skipped[str(process.pk)] = "verify_history: " + "; ".join(problems)
            continue
        lines.append(line)
        exported[process.pk] = (line["proof"]["last_seq"], process.definition_id)
    if not lines:
        return
    body = "".join(
        json.dumps(line, cls=DjangoJSONEncoder, sort_keys=True, ensure_ascii=False) + "\n"
        for line in lines
    ).encode()
    storage = storages[STORAGE]
    keys = {line["definition"]["key"] for line in lines}
    folder = keys.pop() if len(keys) == 1 else "mixed"
    name = storage.save(f"{folder}/archive-{stamp}.jsonl", ContentFile(body))
    _read_back(storage, name, body, processes)

    versions = {p.pk: p.definition.version for p in processes}
    with transaction.atomic():
        locked = {
            p.pk: p
            for p in ProcessInstance.objects.select_for_update()
            .filter(pk__in=list(exported))
            .order_by("pk")
        }
        gone = []
        for pk, (last_seq, _) in exported.items():
            current = locked.get(pk)
            if current is None or current.state not in CLOSED or current.last_seq != last_seq:
                report.skipped[str(pk)] = "changed after its export (kept; archived again later)"
            else:
                gone.append(pk)
        if gone:
            _keep_keys_reserved([locked[pk] for pk in gone], versions, name)
            counts = db_engine.purge_processes(gone)
            hooks.within("processes_purged", process_ids=gone)
            for key, count in counts.items():
                report.deleted[key] = report.deleted.get(key, 0) + count
            per_definition: dict[int, int] = {}
            for pk in gone:
                per_definition[exported[pk][1]] = per_definition.get(exported[pk][1], 0) + 1
            for definition in ProcessDefinition.objects.filter(pk__in=list(per_definition)):
                events.definition_event(
                    definition=definition,
                    type=DefinitionEventType.ARCHIVED,
                    actor=actor,
                    data={"file": name, "processes": per_definition[definition.pk]},
                )
    report.files.append(name)
    report.bytes += len(body)
    report.archived.extend(str(pk) for pk in gone)


def _keep_keys_reserved(processes, versions: dict, file_name: str) -> None:
    """The business keys of processes started under ``business_key_unique: "ever"`` stay taken
    once their rows are gone: a start of one answers with the archived case (in the archiving
    transaction, so no moment exists when the key is free)."""
    now = timezone.now()
    ArchivedBusinessKey.objects.bulk_create(
        [
            ArchivedBusinessKey(
                definition_key=p.definition_key,
                business_key=p.business_key,
                process_id=p.pk,
                definition_version=versions[p.pk],
                state=p.state,
                business_status=p.business_status,
                completed_at=p.completed_at,
                archived_at=now,
                archive_file=file_name,
            )
            for p in processes
            if p.unique_ever
        ],
        ignore_conflicts=True,  # (a key archived before, by a restored backup: the first stays)
    )


def _read_back(storage, name: str, body: bytes, processes) -> None:
    with storage.open(name, "rb") as handle:
        stored = handle.read()
    if hashlib.sha256(stored).digest() != hashlib.sha256(body).digest():
        raise ArchiveError(f"{name}: the stored file differs from what was written")
    statuses = {p.pk: history.business_statuses(p) for p in processes}
    for number, text in enumerate(stored.decode().splitlines(), 1):
        line = json.loads(text)
        problems = check_line(line, statuses[UUID(line["process"]["id"])])
        if problems:
            raise ArchiveError(f"{name} line {number}: " + "; ".join(problems))


def _row(obj) -> dict:
    """Every column of a row, by field name (a relation as its id)."""
    return {
        f.attname if f.is_relation else f.name: _value(getattr(obj, f.attname))
        for f in obj._meta.concrete_fields
    }


def _value(value):
    if isinstance(value, dt.datetime):  # to the microsecond: the events' hash chain covers it
        return value.isoformat()
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def _digest(event_dicts: list[dict]) -> str:
    text = json.dumps(event_dicts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
