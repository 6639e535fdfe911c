"""Registry of service-step handlers: ``@step("accounting.salary_base")`` maps a name to a callable.

A handler takes a ``StepContext`` and returns a JSON-serialisable dict, stored in the process
variables under the task's name. It must be idempotent for ``ctx.idempotency_key``: a step runs
at least once, and the key is the same every time the same execution is run again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)


class StepError(Exception):
    """Base of the errors a handler raises on purpose."""


class RetryableStepError(StepError):
    """A transient failure (timeout, 5xx, 429): the engine retries with the task's back-off."""


class PermanentStepError(StepError):
    """A final failure (4xx, bad data): the task fails at once, no retry."""


@dataclass(frozen=True)
class StepContext:
    process_id: str
    business_key: str
    definition_key: str
    task_id: int
    task_name: str
    stage: str
    attempt: int
    idempotency_key: str
    variables: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)  # the task's extra spec fields


Handler = Callable[[StepContext], Any]


class StepRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, name: str, func: Handler) -> Handler:
        existing = self._handlers.get(name)
        if existing is not None and existing is not func:
            qual = f"{existing.__module__}.{existing.__qualname__}"
            raise ValueError(f"step {name!r} is already registered to {qual}")
        self._handlers[name] = func
        return func

    def unregister(self, name: str) -> None:
        self._handlers.pop(name, None)

    def get(self, name: str) -> Handler:
        try:
            return self._handlers[name]
        except KeyError:
            raise PermanentStepError(f"no handler registered for {name!r}") from None

    def names(self) -> list[str]:
        return sorted(self._handlers)

    def __contains__(self, name: str) -> bool:
        return name in self._handlers


registry = StepRegistry()


@dataclass(frozen=True)
class Called:
    """What a handler did: its result (``{}`` for None), or the error it raised, ``retryable``
    unless the handler said it is final."""

    result: Any = None
    error: str | None = None  # None: the handler returned
    retryable: bool = True

    @property
    def ok(self) -> bool:
        return self.error is None


def call(name: str, ctx: StepContext) -> Called:
    """Call the handler ``name`` with ``ctx``; never raises. The one rule for what a handler's
    error means, wherever it runs (a worker's step or compensation, an inline step): a
    ``PermanentStepError`` is final, a ``RetryableStepError`` is retried after the task's
    back-off, and anything else (a bug in the handler) is logged and retried like a transient
    error. An unknown name is a ``PermanentStepError``."""
    try:
        result = registry.get(name)(ctx)
    except PermanentStepError as exc:
        return Called(error=str(exc) or type(exc).__name__, retryable=False)
    except RetryableStepError as exc:
        return Called(error=str(exc) or type(exc).__name__)
    except Exception as exc:
        logger.exception("handler %s of task %s (%s) raised", name, ctx.task_id, ctx.task_name)
        return Called(error=f"{type(exc).__name__}: {exc}")
    return Called(result={} if result is None else result)


def step(name: str) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler named ``name``."""

    def decorator(func: Handler) -> Handler:
        return registry.register(name, func)

    return decorator


# Handlers every installation has: handy for tests, demos and glue tasks.
@step("flowdesk.noop")
def noop(ctx: StepContext) -> dict:
    """Do nothing; useful as a join or a placeholder."""
    return {}


@step("flowdesk.echo")
def echo(ctx: StepContext) -> dict:
    """Return the task's extra spec fields and the attempt number (to see what a step gets)."""
    return {"config": dict(ctx.config), "attempt": ctx.attempt}
