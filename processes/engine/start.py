"""Starting a process: at most one live instance per business key (or one ever), its first
scheduling decided in memory and written in three INSERTs."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from processes import authority, events
from processes import spec as spec_module
from processes.db import engine as db_engine
from processes.db import internals
from processes.engine._run import (
    _advance,
    _require_grant,
    _Run,
    _spec_for,
)
from processes.errors import InvalidInput
from processes.events import Actor
from processes.models import (
    ArchivedBusinessKey,
    ProcessDefinition,
    ProcessInstance,
    TaskInstance,
)
from processes.selectors import find_definition

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StartResult:
    """A new instance (``created``), the business key's existing one, or, under ``"ever"``,
    the archived case that still holds the key (``archived``; ``process`` is None: the row is
    gone, nothing was started)."""

    process: ProcessInstance | None
    created: bool
    tasks: list[TaskInstance] | None = None  # every task of a new instance, as written
    archived: ArchivedBusinessKey | None = None


def process_start(
    *,
    definition: ProcessDefinition | None = None,
    definition_key: str | None = None,
    component_name: str | None = None,
    business_key: str,
    input: dict | None = None,
    actor: Actor,
    occurred_at=None,
) -> StartResult:
    """Start ``definition``, or the newest published version of ``definition_key`` or
    ``component_name``. The same business key while active returns that instance; under the
    definition's ``business_key_unique: "ever"``, any earlier instance of it, archived or not
    (a second run never starts). ``occurred_at``: when the start was asked for, as the sender
    said (its ``process_started`` event keeps it)."""
    business_key = checked_business_key(business_key)
    if input is None:
        input = {}
    if not isinstance(input, dict):
        raise InvalidInput("input must be a JSON object", fields={"input": ["must be an object"]})
    if definition is None:
        definition = find_definition(key=definition_key, component_name=component_name)
    _require_grant(actor, authority.START, definition.key, "start processes")
    input = checked_input(definition, input)
    ever = _spec_for(definition).business_key_unique == "ever"
    existing = db_engine.existing_instance(definition.key, business_key, ever=ever)
    if isinstance(existing, ArchivedBusinessKey):
        return StartResult(None, False, archived=existing)
    if existing is not None:
        if existing.definition_id == definition.pk:
            existing.definition = definition  # already loaded: don't read it again
        return StartResult(existing, False)
    try:
        with transaction.atomic():
            process, tasks = _create_instance(definition, business_key, input, actor, occurred_at)
    except IntegrityError:
        # Someone started the same business key at the same moment: theirs wins.
        existing = db_engine.existing_instance(definition.key, business_key, ever=ever)
        if existing is None:
            raise
        if isinstance(existing, ArchivedBusinessKey):
            return StartResult(None, False, archived=existing)
        return StartResult(existing, False)
    return StartResult(process, True, tasks)


def checked_business_key(value, field: str = "business_key") -> str:
    """The business key as ``spec.normalize_business_key`` makes it, or InvalidInput."""
    key, problem = spec_module.normalize_business_key(value)
    if problem:
        raise InvalidInput(f"{field} {problem}", fields={field: [problem]})
    return key


def input_problems(definition: ProcessDefinition, data) -> tuple[dict, dict[str, list[str]]]:
    """(the input converted to its declared types, {path: [messages]}) for ``definition``:
    its declared ``input``, or the free-form check of an undeclared one."""
    return spec_module.validate(_spec_for(definition).input, data)


def checked_input(definition: ProcessDefinition, data: dict, field: str = "input") -> dict:
    """The input as ``definition`` declares it, or InvalidInput naming each field's path."""
    clean, problems = input_problems(definition, data)
    if problems:
        raise InvalidInput(
            f"{field} does not fit {definition.key}: "
            + "; ".join(f"{path}: {messages[0]}" for path, messages in list(problems.items())[:5]),
            fields={_joined(field, path): messages for path, messages in problems.items()},
        )
    return clean


def _joined(field: str, path: str) -> str:
    return field if path == "$" else f"{field}.{path}"


def _create_instance(
    definition, business_key, input, actor, occurred_at=None
) -> tuple[ProcessInstance, list]:
    """Decide the first scheduling in memory, then write it: 3 INSERTs, no UPDATE."""
    process, tasks, run = _build_instance(
        definition, business_key, input, actor, occurred_at=occurred_at
    )
    internals.insert([process])
    internals.insert(tasks)
    run.finish()
    return process, tasks


def _build_instance(definition, business_key, input, actor, now=None, occurred_at=None):
    """A new instance, its tasks and its first scheduling, decided in memory (nothing written):
    the events wait on the process, the steps to queue on the returned ``_Run``."""
    spec = _spec_for(definition)
    now = now or timezone.now()
    process = ProcessInstance(
        definition=definition,
        definition_key=definition.key,
        business_key=business_key,
        variables=dict(input),
        current_stage=spec.stages[0].name,
        started_by=actor.label,
        started_by_user=actor.user if actor.user is not None and actor.user.pk else None,
        unique_ever=spec.business_key_unique == "ever",
        created_at=now,
        updated_at=now,
        deadline_at=now + spec.deadline if spec.deadline is not None else None,
    )
    tasks = [
        TaskInstance(
            process=process,
            definition_key=process.definition_key,
            stage=stage.name,
            stage_index=index,
            name=task.name,
            type=task.type,
            handler=task.handler or "",
            task_queue=task.task_queue or "",
            candidate_role=task.assigned_to or "",
            created_at=now,
        )
        for index, stage in enumerate(spec.stages)
        for task in stage.tasks
    ]
    run = _Run(process=process, tasks={t.name: t for t in tasks}, actor=actor)
    run.log.occurred_at = occurred_at  # (the next event's only: ``process_started``)
    events.process_started(log=run.log, actor=actor, input=input)
    events.stage_started(log=run.log, actor=actor, stage=process.current_stage)
    _advance(run)
    run.index_search()
    return process, tasks, run
