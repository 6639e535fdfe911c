"""What a step handler is given (``StepContext``), how long it may run, what its result must be,
and calling a pure-compute handler inline.

An inline step (``"inline": true``) runs inside the engine transaction that made it ready, as
Viewflow's ``Function`` nodes do: no queue, no lease, one ``task_completed`` event. It holds the
process row lock while it runs, so its handler must compute only: a query is refused (the
transaction stays usable) and counts as a permanent failure naming the rule.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection

from processes import spec as spec_module
from processes.models import ProcessDefinition, TaskInstance
from processes.steps import Called, PermanentStepError, StepContext, call

_SPEC_CACHE: dict[tuple, spec_module.ProcessSpec] = {}


def _spec_for(definition: ProcessDefinition) -> spec_module.ProcessSpec:
    """The parsed spec of a published definition, cached: published specs never change.

    The key includes key, version and publication time, so a reused id (SQLite after a
    rollback, a restored backup) can never serve another definition's spec.
    """
    cache_key = (definition.pk, definition.key, definition.version, definition.published_at)
    spec = _SPEC_CACHE.get(cache_key)
    if spec is None:
        if len(_SPEC_CACHE) > 512:
            _SPEC_CACHE.clear()
        spec = _SPEC_CACHE[cache_key] = definition.parsed()
    return spec


def step_context(task, task_spec, process, suffix: str = "") -> StepContext:
    return StepContext(
        process_id=str(process.pk),
        business_key=process.business_key,
        definition_key=process.definition_key,
        task_id=task.pk,
        task_name=task.name,
        stage=task.stage,
        attempt=task.attempts,
        idempotency_key=task.idempotency_key + suffix,
        variables=dict(process.variables),
        config=dict(task_spec.extra),
    )


def handler_timeout(task_spec: spec_module.TaskSpec) -> int:
    """The seconds a worker's handler of this task (its step or its compensation) may run: the
    task's own ``timeout`` when it runs a handler (a human or external task's ``timeout`` is
    how long it waits), else ``FLOWDESK_DEFAULT_STEP_TIMEOUT``."""
    if task_spec.handler and task_spec.timeout is not None:
        return max(1, int(task_spec.timeout.total_seconds()))
    return settings.FLOWDESK_DEFAULT_STEP_TIMEOUT


def checked_result(task_spec: spec_module.TaskSpec, result: Any) -> tuple[Any, dict]:
    """(the result converted to its declared types, {path: [messages]}): a SERVICE task's
    declared ``result``, or the free-form check of an undeclared one."""
    if result is None and task_spec.result is not None:
        result = {}  # "no result": the declaration says whether that is enough
    return spec_module.validate(task_spec.result, result)


def result_breaks(task: TaskInstance, problems: dict[str, list[str]]) -> str:
    """The error of an attempt whose result breaks the task's declaration, naming the fields."""
    listed = "; ".join(f"{path}: {messages[0]}" for path, messages in list(problems.items())[:5])
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return f"the result of {task.name} breaks its declaration: {listed}{more}"


class InlineQueryRefused(PermanentStepError):
    """An inline handler tried to query the database."""


def _refuse(execute, sql, params, many, context):
    raise InlineQueryRefused(
        "an inline handler must not query the database (it runs inside the engine's "
        'transaction): drop "inline" to run it on a worker'
    )


def call_inline(handler_name: str, ctx: StepContext) -> Called:
    """Run ``handler_name`` now, with the database closed to it; its failure means what it would
    on a worker (``steps.call``), and a result that is not JSON is final."""
    with connection.execute_wrapper(_refuse):
        called = call(handler_name, ctx)
    if not called.ok:
        return called
    try:  # stored as JSON with the transaction: a value that isn't must not break it
        json.dumps(called.result, cls=DjangoJSONEncoder)
    except (TypeError, ValueError) as exc:
        return Called(error=f"the handler's result is not JSON: {exc}", retryable=False)
    return called
