"""Definitions: import (a new version, or the identical newest one), publish, retire, edit a
draft. People need ``authority.may_publish`` on the key; a ``component_name`` belongs to one key.

Publishing checks the version's calls (``check_calls``): a person needs ``start_process`` on
every definition it calls, and the call graph, the new version included, has no cycle."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from django.db import IntegrityError, transaction

from processes import authority, events, selectors
from processes import spec as spec_module
from processes.db import engine as db_engine
from processes.engine._run import (
    _spec_for,
    _transition,
)
from processes.errors import Conflict, Forbidden
from processes.events import Actor
from processes.models import (
    DefinitionComponent,
    DefinitionEventType,
    DefinitionStatus,
    ProcessDefinition,
)

logger = logging.getLogger(__name__)


@transaction.atomic
def definition_import(
    *, data: Any, actor: Actor, key: str | None = None, publish: bool = True
) -> tuple[ProcessDefinition, bool]:
    """Validate ``data`` and store it as the next version of its key; reuse an identical newest one.

    Returns (definition, created). Raises ``spec.SpecValidationError`` listing every problem,
    ``Conflict`` when its ``component_name`` belongs to another key, ``Forbidden`` when a person
    may not publish this key (``authority.may_publish``).
    """
    if key is not None and isinstance(data, dict):
        data = {**data, "key": key}
    elif (
        isinstance(data, dict) and "key" not in data and isinstance(data.get("component_name"), str)
    ):
        # A seed template imported again by its component name is the next version of the key
        # that owns that name, not a new key.
        owner = selectors.component_owner(data["component_name"])
        if owner is not None:
            data = {**data, "key": owner}
    parsed = spec_module.parse_or_raise(data)
    _check_may_publish(actor, parsed.key)
    is_new_key = not ProcessDefinition.objects.filter(key=parsed.key).exists()
    _claim_component(parsed.component_name, parsed.key)
    latest = (
        ProcessDefinition.objects.select_for_update()
        .filter(key=parsed.key)
        .order_by("-version")
        .first()
    )
    same = latest is not None and (
        {**latest.spec, "key": latest.key} == {**data, "key": parsed.key}
    )
    if same and latest.status != DefinitionStatus.RETIRED:
        if publish and latest.status == DefinitionStatus.DRAFT:
            check_calls(parsed, latest.version, actor)
            latest.publish()
            latest.save()
            events.definition_event(
                definition=latest, type=DefinitionEventType.PUBLISHED, actor=actor
            )
        return latest, False
    definition = ProcessDefinition(
        key=parsed.key,
        version=(latest.version + 1) if latest else 1,
        name=parsed.name,
        component_name=parsed.component_name or "",
        description=parsed.description,
        spec=data,
        created_by=actor.user if actor.user is not None and actor.user.pk else None,
    )
    if publish:
        check_calls(parsed, definition.version, actor)
        definition.publish()
    definition.save()
    events.definition_event(
        definition=definition,
        type=DefinitionEventType.IMPORTED,
        actor=actor,
        data={"status": definition.status, "new_key": is_new_key},
    )
    if publish:
        events.definition_event(
            definition=definition, type=DefinitionEventType.PUBLISHED, actor=actor
        )
    if is_new_key and actor.user is not None:
        authority.grant_first_publisher(actor.user, definition)
    return definition, True


def _check_may_publish(actor: Actor, key: str) -> None:
    """People need the publish right on the key; the system (commands, set-up) always may."""
    if actor.user is not None and not authority.may_publish(actor.user, key):
        raise Forbidden(f"you may not publish versions of {key!r}")


def check_calls(parsed: spec_module.ProcessSpec, version: int, actor: Actor) -> None:
    """What publishing version ``version`` of ``parsed`` requires of its PROCESS tasks.

    A person needs ``start_process`` on each definition it calls: calling a definition starts it
    (``Forbidden`` otherwise; the system may). And no call may lead back into a cycle, over
    pinned versions and the newest published version of unpinned calls, this one included: a
    cycle would start processes without end (``SpecValidationError`` naming each task's path).
    """
    called = [t for t in parsed.tasks if t.call is not None]
    if not called:
        return
    stages_raw = parsed.raw.get("stages") if isinstance(parsed.raw, dict) else None
    stages_raw = stages_raw if isinstance(stages_raw, list) else []
    if actor.user is not None:
        for task in called:
            key = task.call.definition
            if not authority.has_definition_perm(actor.user, authority.START, key):
                where = spec_module.task_path(stages_raw, task.name) + ".process.definition"
                message = (
                    f"you may not start processes of {key!r}, so you may not publish a "
                    "definition that calls it"
                )
                raise Forbidden(f"{where}: {message}", fields={where: [message]})
    db_engine.lock_call_graph()  # (held until this publication commits)
    errors = spec_module.call_cycles((parsed.key, version), parsed, _call_resolver(parsed, version))
    if errors:
        raise spec_module.SpecValidationError(errors)


def _call_resolver(root: spec_module.ProcessSpec, version: int):
    """What a call starts while ``root`` v``version`` is being published: its pinned version
    (published or retired, as ``subprocess.child_definition`` finds it), or the newest published
    one, which is ``root`` itself when it is newer than every published version of its key."""
    found: dict = {}

    def resolve(call: spec_module.CallSpec):
        cache_key = (call.definition, call.version)
        if cache_key not in found:
            found[cache_key] = _resolve_call(call, root, version)
        return found[cache_key]

    return resolve


def _resolve_call(call: spec_module.CallSpec, root: spec_module.ProcessSpec, version: int):
    versions = ProcessDefinition.objects.filter(key=call.definition)
    if call.version is not None:
        if call.definition == root.key and call.version == version:
            return (root.key, version), root
        row = versions.filter(
            version=call.version, status__in=[DefinitionStatus.PUBLISHED, DefinitionStatus.RETIRED]
        ).first()
    else:
        row = versions.filter(status=DefinitionStatus.PUBLISHED).order_by("-version").first()
        if call.definition == root.key and (row is None or row.version < version):
            return (root.key, version), root
    if row is None:
        return None  # nothing to start: the run-time's incident, not a cycle
    try:
        return (row.key, row.version), _spec_for(row)
    except spec_module.SpecValidationError:
        return None  # (a stored spec that no longer parses calls nothing it could start)


def _claim_component(component_name: str | None, key: str) -> None:
    """Make ``key`` the owner of ``component_name``, or refuse when another key owns it."""
    if not component_name:
        return
    try:
        with transaction.atomic():
            owner, _ = DefinitionComponent.objects.get_or_create(
                component_name=component_name, defaults={"key": key}
            )
    except IntegrityError:  # a concurrent import claimed it first
        owner = DefinitionComponent.objects.get(component_name=component_name)
    if owner.key != key:
        raise Conflict(
            f"component_name {component_name!r} belongs to definition {owner.key!r}: import "
            f"this as a new version of {owner.key!r} or give it another component_name",
            fields={"component_name": [f"already used by definition {owner.key!r}"]},
        )


@transaction.atomic
def definition_publish(*, definition_id: int, actor: Actor) -> ProcessDefinition:
    definition = ProcessDefinition.objects.select_for_update().get(pk=definition_id)
    _check_may_publish(actor, definition.key)
    parsed = spec_module.parse_or_raise(definition.spec)  # handlers may have changed since
    if parsed.key != definition.key:
        parsed = dataclasses.replace(parsed, key=definition.key)
    check_calls(parsed, definition.version, actor)
    _transition(definition, "publish")
    definition.save()
    events.definition_event(definition=definition, type=DefinitionEventType.PUBLISHED, actor=actor)
    return definition


@transaction.atomic
def definition_retire(*, definition_id: int, actor: Actor) -> ProcessDefinition:
    definition = ProcessDefinition.objects.select_for_update().get(pk=definition_id)
    _check_may_publish(actor, definition.key)
    _transition(definition, "retire")
    definition.save()
    events.definition_event(definition=definition, type=DefinitionEventType.RETIRED, actor=actor)
    return definition


@transaction.atomic
def definition_update_draft(*, definition_id: int, data: Any, actor: Actor) -> ProcessDefinition:
    """Replace a draft's spec (validated); a published or retired spec never changes."""
    definition = ProcessDefinition.objects.select_for_update().get(pk=definition_id)
    _check_may_publish(actor, definition.key)
    if definition.status != DefinitionStatus.DRAFT:
        raise Conflict(f"{definition} is {definition.status}: save it as a new version instead")
    if isinstance(data, dict) and "key" not in data:
        data = {**data, "key": definition.key}
    parsed = spec_module.parse_or_raise(data)
    if parsed.key != definition.key:
        raise spec_module.SpecValidationError(
            [spec_module.SpecError("key", f"must stay {definition.key!r} for this draft")]
        )
    _claim_component(parsed.component_name, definition.key)
    definition.spec = data
    definition.name = parsed.name
    definition.component_name = parsed.component_name or ""
    definition.description = parsed.description
    definition.save(update_fields=["spec", "name", "component_name", "description"])
    events.definition_event(definition=definition, type=DefinitionEventType.UPDATED, actor=actor)
    return definition
