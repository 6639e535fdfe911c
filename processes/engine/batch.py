"""Starting many processes of one definition at once (the monthly run): idempotent per business
key, answered per item, written a chunk of instances per transaction."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.utils import timezone

from processes import authority, events, queue
from processes import spec as spec_module
from processes.db import engine as db_engine
from processes.db import internals
from processes.engine import subprocess
from processes.engine._run import _require_grant, _spec_for
from processes.engine.handlers import handler_timeout
from processes.engine.start import _build_instance, input_problems, process_start
from processes.errors import InvalidInput
from processes.events import Actor
from processes.models import ArchivedBusinessKey, ProcessDefinition

logger = logging.getLogger(__name__)

MAX_BATCH = 10_000
CHUNK = 200  # instances per transaction: one COPY per table per chunk

CREATED, EXISTING, INVALID = "created", "existing", "invalid"


@dataclass
class BatchItem:
    """What became of one item: ``created`` (a new instance), ``existing`` (the business key's
    instance, nothing started; ``archived`` when retention archived it) or ``invalid``
    (``errors`` by field, nothing started)."""

    index: int
    business_key: str | None
    outcome: str = INVALID
    process_id: object = None
    state: str = ""
    errors: dict[str, list[str]] = field(default_factory=dict)
    archived: ArchivedBusinessKey | None = None  # an existing instance retention archived


def check_item(
    raw_item, definition: ProcessDefinition | None = None
) -> tuple[str | None, dict | None, dict[str, list[str]]]:
    """(business key, input, errors by field) of one item: the rules ``process_start`` applies
    (the one business-key rule, and the definition's declared input when given)."""
    if not isinstance(raw_item, dict):
        return None, None, {"item": ["must be an object {business_key, input}"]}
    errors: dict[str, list[str]] = {}
    raw_key = raw_item.get("business_key")
    key, problem = spec_module.normalize_business_key(raw_key)
    if problem:
        errors["business_key"] = [problem]
        key = raw_key if isinstance(raw_key, str) else None
    data = raw_item.get("input", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        errors["input"] = ["must be an object"]
    elif definition is not None:
        data, problems = input_problems(definition, data)
        for path, messages in problems.items():
            errors["input" if path == "$" else f"input.{path}"] = messages
    unknown = sorted(set(raw_item) - {"business_key", "input"})
    for name in unknown:
        errors[name] = ["unknown field"]
    return key, data, errors


def process_start_batch(
    *, definition: ProcessDefinition, items: list, actor: Actor
) -> list[BatchItem]:
    """Start one instance of ``definition`` per item ``{business_key, input}``, in order.

    The rules of ``process_start`` per item: a business key with an active instance (or any
    under ``business_key_unique: "ever"``) answers that instance; a key repeated within the batch
    is refused. Valid items are written ``CHUNK`` instances per transaction; a chunk that races
    a concurrent start of one of its keys is redone one item at a time, where that start wins.
    """
    if not isinstance(items, list) or not items:
        raise InvalidInput(
            "items must be a non-empty list", fields={"items": ["must not be empty"]}
        )
    if len(items) > MAX_BATCH:
        raise InvalidInput(
            f"at most {MAX_BATCH} items per batch",
            fields={"items": [f"at most {MAX_BATCH} items per batch, got {len(items)}"]},
        )
    _require_grant(actor, authority.START, definition.key, "start processes")
    results: list[BatchItem] = []
    todo: list[tuple[BatchItem, dict]] = []
    seen: dict[str, int] = {}
    for index, raw_item in enumerate(items):
        key, data, errors = check_item(raw_item, definition)
        item = BatchItem(index=index, business_key=key)
        if not errors and key in seen:
            errors = {"business_key": [f"repeats item {seen[key]} of this batch"]}
        item.errors = errors
        results.append(item)
        if not errors:
            seen[key] = index
            todo.append((item, data))
    ever = _spec_for(definition).business_key_unique == "ever"
    for start in range(0, len(todo), CHUNK):
        _start_chunk(definition, todo[start : start + CHUNK], actor, ever)
    return results


def _start_chunk(definition, chunk, actor, ever) -> None:
    found = db_engine.existing_instances(
        definition.key, [item.business_key for item, _ in chunk], ever=ever
    )
    new = []
    for item, data in chunk:
        if item.business_key in found:
            existing = found[item.business_key]
            item.outcome = EXISTING
            item.process_id, item.state, item.archived = (
                existing.id,
                existing.state,
                existing.archived,
            )
        else:
            new.append((item, data))
    if not new:
        return
    try:
        with transaction.atomic():
            _create_many(definition, new, actor)
    except IntegrityError:
        # Someone started one of these keys meanwhile: item by item, where theirs wins.
        logger.info("batch chunk of %s raced a concurrent start: item by item", definition.key)
        for item, data in new:
            result = process_start(
                definition=definition, business_key=item.business_key, input=data, actor=actor
            )
            item.outcome = CREATED if result.created else EXISTING
            if result.archived is not None:
                item.process_id, item.state = result.archived.process_id, result.archived.state
                item.archived = result.archived
            else:
                item.process_id, item.state = result.process.pk, result.process.state


def _create_many(definition, new, actor) -> None:
    """Build every instance of the chunk in memory, then one INSERT per table (in slices)."""
    now = timezone.now()
    processes, tasks, pending, to_enqueue, to_spawn = [], [], [], [], []
    runs = []  # each instance's unit of work, and its events (for events_written, once inserted)
    for item, data in new:
        process, process_tasks, run = _build_instance(
            definition, item.business_key, data, actor, now=now
        )
        processes.append(process)
        tasks.extend(process_tasks)
        process_events = events.take_pending(run.log)
        pending.extend(process_events)
        runs.append((run, process_events))
        to_enqueue.extend((t, handler_timeout(run.task_spec(t))) for t in run.to_enqueue)
        to_spawn.extend(run.to_spawn)  # PROCESS tasks: their children start after commit
    internals.copy_in(processes)
    internals.copy_in(tasks)
    internals.copy_in(pending)
    for run, process_events in runs:
        events.written(run.log, process_events)  # the events-out outbox, in this transaction
        run.announce()  # its human tasks and incidents, after commit
    for (item, _), process in zip(new, processes, strict=True):
        item.outcome = CREATED
        item.process_id, item.state = process.pk, process.state
    if to_spawn:
        subprocess.spawn_after_commit([task.pk for task in to_spawn])
    # ids exist once inserted; each step names its process (batch dispatch groups by it)
    steps = [(task.id, timeout, None, str(task.process_id)) for task, timeout in to_enqueue]
    if steps:
        # One queued job per chunk, which a worker turns into one message per process's steps
        # (queue.enqueue_steps): queueing thousands of steps one by one would hold the request
        # for minutes (ORM broker). Lost, it is a delay only: every step carries its wake_at,
        # the timer sweep queues it again.
        queue.on_commit(queue.enqueue, queue.ENQUEUE_STEPS, steps)
