"""Call activities: a ``PROCESS`` task starts child processes of another definition, waits for
them and maps their results back.

Children start and are cancelled by queued work, never in the request that caused it: the
transaction that schedules a PROCESS task queues ``children_start`` after its commit
(``spawn_after_commit``), and a worker starts them, one PROCESS task per transaction; the task's
timer (``FLOWDESK_REENQUEUE_AFTER``) queues it again if that message is lost.

Locks are always taken child first, then parent (never the other way round), so a child
finishing and its parent being cancelled can't deadlock:

- ``spawn`` locks the parent and inserts its children (new rows only: nothing to lock);
- a child that completes, opens or resolves an incident, or is cancelled tells its parent in
  its own transaction (``notify_parent``, from ``_Run.finish``): the parent row is locked after
  the child's;
- a parent that is cancelled has its children cancelled by queued work after its own commit,
  each in a transaction of its own (``operate.children_cancel``); a child that finished
  meanwhile is left as it is.
"""

from __future__ import annotations

import logging
import re

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from processes import authority, events, queue, selectors
from processes import spec as spec_module
from processes.db import core
from processes.db import engine as db_engine
from processes.engine._run import (
    FINISH_HOOKS,
    _advance,
    _after_task_failed_for_good,
    _complete,
    _lock,
    _lock_for_task,
    _maybe_resolve_incident,
    _Run,
    _transition,
)
from processes.engine.start import _build_instance
from processes.errors import Conflict, Forbidden, NotFound
from processes.events import Actor
from processes.models import (
    ACTIVE_PROCESS_STATES,
    DefinitionStatus,
    ProcessDefinition,
    ProcessInstance,
    ProcessState,
    TaskState,
)

logger = logging.getLogger(__name__)


def child_definition(call: spec_module.CallSpec) -> ProcessDefinition:
    """The pinned version (published or retired), or the newest published one."""
    versions = ProcessDefinition.objects.filter(key=call.definition)
    if call.version is not None:
        found = versions.filter(
            version=call.version, status__in=[DefinitionStatus.PUBLISHED, DefinitionStatus.RETIRED]
        ).first()
    else:
        found = versions.filter(status=DefinitionStatus.PUBLISHED).order_by("-version").first()
    if found is None:
        pinned = f" v{call.version}" if call.version is not None else ""
        raise NotFound(f"no published definition {call.definition!r}{pinned}")
    return found


def spawn_after_commit(task_ids: list[int]) -> None:
    """Queue the start of the children of PROCESS tasks just scheduled, once their rows are
    committed (``children_start`` on a worker): the request answers without waiting for them.

    Through ``queue.on_commit``: a broker that refuses can't turn the committed start into an
    error (it is logged, and each task's timer queues its children again)."""
    queue.on_commit(queue.enqueue_children, list(task_ids))


def children_start(*, task_ids) -> None:
    """Start the children of the scheduled PROCESS tasks ``task_ids``, each task in a
    transaction of its own (a worker's queued work; safe to run twice)."""
    for task_id in task_ids:
        spawn_or_fail(task_id=task_id)


def spawn_or_fail(*, task_id) -> None:
    """``spawn``; an unexpected error fails the task (an incident on the parent) instead of
    reaching whoever caused the commit."""
    try:
        spawn(task_id=task_id)
    except Exception as exc:
        logger.exception("starting the children of task %s failed", task_id)
        error = f"could not start the children: {type(exc).__name__}: {exc}"[:500]
        try:
            with transaction.atomic():
                run, task = _lock_for_task(task_id)
                if task.state == TaskState.SCHEDULED and run.process.state in ACTIVE_PROCESS_STATES:
                    run.actor = _spawner(run.process)
                    _fail_spawn(run, task, error)
                    run.save()
        except Exception:  # (the database is gone too): the task's timer tries again
            logger.exception("recording that failure on task %s failed too", task_id)


def spawn(*, task_id) -> None:
    """Start the children of the scheduled PROCESS task ``task_id``; safe to call twice. A
    problem (no such definition, ``for_each`` not a list or over ``FLOWDESK_MAX_FOR_EACH``, a
    call deeper than ``FLOWDESK_MAX_CALL_DEPTH``, an initiator without ``start_process`` on the
    child, a business key taken) fails the task, which opens an incident on the parent."""

    with transaction.atomic():
        run, task = _lock_for_task(task_id)
        process = run.process
        if task.state != TaskState.SCHEDULED or process.state not in ACTIVE_PROCESS_STATES:
            return
        run.actor = _spawner(process)
        call = run.task_spec(task).call
        now = timezone.now()
        task.wake_at = None  # spawned or failed below: the recovery timer is done
        try:
            definition = child_definition(call)
            check_may_call(process, definition.key)
            child_spec = definition.parsed()
            ever = child_spec.business_key_unique == "ever"
            children = []
            keys = set()
            for index, item in enumerate(_items(process.variables, call)):
                scope = {**process.variables, "item": item, "index": index}
                key = _business_key(process, task, call, scope, index)
                data = _child_input(definition, child_spec, call, scope, key)
                if key in keys:
                    raise Conflict(f"business key {key!r} comes twice in this task's children")
                keys.add(key)
                if db_engine.existing_instance(definition.key, key, ever=ever) is not None:
                    raise Conflict(f"{definition.key} {key!r} already has an instance")
                child, child_tasks, child_run = _build_instance(
                    definition, key, data, run.actor, now=now
                )
                child.parent_id, child.parent_task_id = process.pk, task.pk
                children.append((child, child_tasks, child_run))
        except (NotFound, Conflict, Forbidden, ValueError) as exc:
            _fail_spawn(run, task, str(exc))
            run.save()
            return
        _transition(task, "start")
        run.touch(task)
        events.task_started(log=run.log, actor=run.actor, task=task)
        if children:
            core.create_rows([c for c, _, _ in children])
            core.create_rows([t for _, tasks, _ in children for t in tasks])
            for _, _, child_run in children:
                child_run.finish()  # its events; its first steps queued after commit
            events.subprocess_started(
                log=run.log,
                actor=run.actor,
                task=task,
                definition=f"{definition.key} v{definition.version}",
                children=[
                    {"id": str(c.pk), "business_key": c.business_key} for c, _, _ in children
                ],
            )
            if all(c.state == ProcessState.COMPLETED for c, _, _ in children):
                # Every child completed as it started (its first tasks were skipped): nothing
                # will tell this task later, so it completes now.
                for child, _, _ in children:
                    events.subprocess_finished(
                        log=run.log, actor=run.actor, task=task, child=child, state=child.state
                    )
                results = [_result(c, call) for c, _, _ in children]
                _complete(run, task, results[0] if call.for_each is None else {"children": results})
                _advance(run)
        else:  # an empty list: nothing to wait for
            _complete(run, task, {"children": []})
            _advance(run)
        run.save()


def _fail_spawn(run: _Run, task, error: str) -> None:
    """Nothing was started: the task fails for good, an incident (one SMS) on its process."""
    _transition(task, "start")
    _transition(task, "fail")
    task.wake_at = None
    task.last_error = error
    run.touch(task)
    events.task_failed(log=run.log, actor=run.actor, task=task, error=error)
    _after_task_failed_for_good(run, task, error)


def _spawner(process: ProcessInstance) -> Actor:
    """Who starts a process's children: the system, on its behalf (recorded as the children's
    ``started_by``)."""
    return Actor.system(f"{process.definition_key}:{process.business_key}")


def check_may_call(process: ProcessInstance, child_key: str) -> None:
    """Whether ``process`` may start a child of ``child_key`` now; raises the refusal.

    A chain of calls is at most ``FLOWDESK_MAX_CALL_DEPTH`` levels deep, and grants compose:
    the person who started the first process of the chain needs ``start_process`` on the
    child's definition, as if they started it themselves (a chain the system started may).
    """
    limit = settings.FLOWDESK_MAX_CALL_DEPTH
    chain = selectors.ancestors(process, limit=limit + 1)
    depth = len(chain) + 1  # the child's: the first process is at 0
    if depth > limit:
        raise ValueError(
            f"call depth: a child of {process} would be {depth} levels below the first process "
            f"of its chain, over FLOWDESK_MAX_CALL_DEPTH ({limit}); nothing more was started"
        )
    root = chain[-1] if chain else process
    who = selectors.initiator(root)
    if who.user is None and who.system:
        return  # started by the system (a command, a sweep, a seed import): it may
    if who.user is None:
        raise Forbidden(
            f"{who.label!r}, who started {root}, is no longer a user, so nobody may start "
            f"processes of {child_key!r} for them: no child was started"
        )
    if not authority.has_definition_perm(who.user, authority.START, child_key):
        raise Forbidden(
            f"{who.label!r}, who started {root}, may not start processes of {child_key!r}: "
            "no child was started"
        )


def _items(variables: dict, call: spec_module.CallSpec) -> list:
    if call.for_each is None:
        return [None]
    items = spec_module.lookup(variables, call.for_each)
    if not isinstance(items, list):
        raise ValueError(f"for_each: variable {call.for_each!r} is not a list")
    limit = settings.FLOWDESK_MAX_FOR_EACH
    if len(items) > limit:
        raise ValueError(
            f"for_each: {len(items)} items in {call.for_each!r}, over FLOWDESK_MAX_FOR_EACH "
            f"({limit}); nothing was started"
        )
    return items


def _child_input(definition, child_spec, call, scope, key) -> dict:
    """The child's input mapped from the parent's variables, checked against the child
    definition's declared ``input`` (ValueError naming the field: the task fails)."""
    data = {name: _lookup(scope, path) for name, path in call.input}
    clean, problems = spec_module.validate(child_spec.input, data)
    if problems:
        path, messages = next(iter(problems.items()))
        source = dict(call.input).get(path.split(".", 1)[0])
        mapped = f" (mapped from {source!r})" if source else ""
        raise ValueError(
            f"input of {definition.key} {key!r}: {path}{mapped}: {messages[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
        )
    return clean


def _business_key(process, task, call, scope, index) -> str:
    """The child's key, through the one business-key rule (``spec.normalize_business_key``)."""
    if call.business_key is not None and "{" in call.business_key:  # "SAL-{period}-{item}"
        key = PLACEHOLDER_RE.sub(lambda m: _text(scope, m.group(1)), call.business_key)
    elif call.business_key is not None:
        value = _lookup(scope, call.business_key)
        if not isinstance(value, str | int) or isinstance(value, bool) or value == "":
            raise ValueError(f"business_key: {call.business_key!r} is not a text or a number")
        key = str(value)
    else:
        suffix = f":{index}" if call.for_each is not None else ""
        key = f"{process.business_key}:{task.name}{suffix}"[:200]  # made here: cut, not refused
    normalized, problem = spec_module.normalize_business_key(key)
    if problem:
        raise ValueError(f"business_key {key[:80]!r}: {problem}")
    return normalized


PLACEHOLDER_RE = re.compile(r"\{([A-Za-z0-9_.]+)\}")


def _text(scope: dict, path: str) -> str:
    value = _lookup(scope, path)
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ValueError(f"business_key: {path!r} is not a text or a number")
    return str(value)


def _lookup(scope: dict, path: str):
    value = spec_module.lookup(scope, path)
    return None if value is spec_module.MISSING else value


def notify_parent(child_run) -> None:
    """``child_run``'s process changed state: tell the PROCESS task waiting for it (in the same
    transaction, parent locked after the child)."""

    child = child_run.process
    if child.parent_task_id is None or child_run.loaded is None:
        return  # not a child, or one being started (by its parent's transaction)
    if child_run.loaded.get("state") == child.state:
        return
    run = _lock(child.parent_id)
    run.actor = Actor.system(f"child {child.definition_key}:{child.business_key}")
    task = next((t for t in run.tasks.values() if t.pk == child.parent_task_id), None)
    parent = run.process
    if task is None or parent.state not in ACTIVE_PROCESS_STATES:
        return  # the parent was cancelled (or finished) first: nothing waits any more
    waiting = task.state in (TaskState.RUNNING, TaskState.FAILED)
    if child.state in (ProcessState.COMPLETED, ProcessState.CANCELLED):
        events.subprocess_finished(
            log=run.log, actor=run.actor, task=task, child=child, state=child.state
        )
    if not waiting:
        run.save()
        return
    call = run.task_spec(task).call
    if child.state == ProcessState.COMPLETED:
        # this execution's children (a replayed task started new ones)
        siblings = list(
            ProcessInstance.objects.filter(
                parent_task_id=task.pk, created_at__gte=task.scheduled_at
            )
        )
        if task.state == TaskState.RUNNING and all(
            s.state == ProcessState.COMPLETED for s in siblings
        ):
            results = [_result(s, call) for s in sorted(siblings, key=_index_of)]
            _complete(run, task, results[0] if call.for_each is None else {"children": results})
            _advance(run)
    elif child.state in (ProcessState.FAILED, ProcessState.CANCELLED, ProcessState.COMPENSATED):
        error = (
            f"child {child.definition_key}:{child.business_key} was {child.state}"
            if child.state != ProcessState.FAILED
            else f"child {child.definition_key}:{child.business_key} has an incident"
        )
        if task.state == TaskState.RUNNING:
            _transition(task, "fail")
            task.last_error = error
            run.touch(task)
            events.task_failed(log=run.log, actor=run.actor, task=task, error=error)
            _after_task_failed_for_good(run, task, error)
    elif child.state == ProcessState.RUNNING and task.state == TaskState.FAILED:
        still = ProcessInstance.objects.filter(
            parent_task_id=task.pk,
            created_at__gte=task.scheduled_at,
            state__in=[ProcessState.FAILED, ProcessState.CANCELLED],
        ).exists()
        if not still:  # the child's incident was resolved: the parent waits again
            _transition(task, "retry")
            _transition(task, "start")
            task.last_error = ""
            run.touch(task)
            events.task_retried(
                log=run.log, actor=run.actor, task=task, reason="child incident resolved"
            )
            _maybe_resolve_incident(run)
    run.touch(task)
    run.save()


def _index_of(child: ProcessInstance):
    tail = child.business_key.rsplit(":", 1)[-1]
    return (0, int(tail)) if tail.isascii() and tail.isdigit() else (1, child.business_key)


def _result(child: ProcessInstance, call: spec_module.CallSpec) -> dict:
    mapped = {name: _lookup(child.variables, path) for name, path in call.output}
    return {"process": str(child.pk), "business_key": child.business_key, **mapped}


def _after_finish(run: _Run) -> None:
    """What ``_Run.finish`` asks of call activities: start the children of PROCESS tasks just
    scheduled, and tell a waiting parent that this child changed."""
    if run.to_spawn:
        spawn_after_commit([t.pk for t in run.to_spawn])
    if run.process.parent_task_id is not None:
        notify_parent(run)


FINISH_HOOKS.append(_after_finish)
