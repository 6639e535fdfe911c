"""What a step handler is given (``StepContext``), and calling a pure-compute handler inline.

An inline step (``"inline": true``) runs inside the engine transaction that made it ready, as
Viewflow's ``Function`` nodes do: no queue, no lease, one ``task_completed`` event. It holds the
process row lock while it runs, so its handler must compute only: a query is refused (the
transaction stays usable) and counts as a permanent failure naming the rule.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection

from processes.steps import PermanentStepError, RetryableStepError, StepContext, registry

logger = logging.getLogger(__name__)


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


class InlineQueryRefused(PermanentStepError):
    """An inline handler tried to query the database."""


def _refuse(execute, sql, params, many, context):
    raise InlineQueryRefused(
        "an inline handler must not query the database (it runs inside the engine's "
        'transaction): drop "inline" to run it on a worker'
    )


@dataclass(frozen=True)
class InlineOutcome:
    result: Any = None
    error: str = ""
    retryable: bool = False

    @property
    def ok(self) -> bool:
        return not self.error


def call_inline(handler_name: str, ctx: StepContext) -> InlineOutcome:
    """Run ``handler_name`` now, with the database closed to it; its failure as a worker's
    would be (a ``RetryableStepError`` or an unexpected exception may be retried)."""
    try:
        with connection.execute_wrapper(_refuse):
            result = registry.get(handler_name)(ctx)
    except PermanentStepError as exc:
        return InlineOutcome(error=str(exc) or type(exc).__name__)
    except RetryableStepError as exc:
        return InlineOutcome(error=str(exc) or type(exc).__name__, retryable=True)
    except Exception as exc:  # a bug in a handler is retried like a transient error, as on a worker
        logger.exception("inline step %s (%s) raised", ctx.task_name, handler_name)
        return InlineOutcome(error=f"{type(exc).__name__}: {exc}", retryable=True)
    result = {} if result is None else result
    try:  # stored as JSON with the transaction: a value that isn't must not break it
        json.dumps(result, cls=DjangoJSONEncoder)
    except (TypeError, ValueError) as exc:
        return InlineOutcome(error=f"the handler's result is not JSON: {exc}")
    return InlineOutcome(result=result)
