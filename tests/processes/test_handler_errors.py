"""What a handler's error means is one rule (``steps.call``), wherever the handler runs: a
worker's step, an inline step, a compensation record the same error for the same exception."""

import pytest

from processes import engine, worker
from processes.models import TaskState
from processes.steps import PermanentStepError, RetryableStepError, registry
from tests.conftest import record_steps
from tests.factories import definition_data

pytestmark = pytest.mark.django_db

RAISES = {
    "final, no message": (PermanentStepError(), "PermanentStepError"),
    "final": (PermanentStepError("card refused"), "card refused"),
    "retryable, no message": (RetryableStepError(), "RetryableStepError"),
    "a bug": (ZeroDivisionError("division by zero"), "ZeroDivisionError: division by zero"),
}


@pytest.fixture(params=list(RAISES), ids=list(RAISES))
def raising(request):
    """``t.raise`` raises the parameter's exception; ``t.ok`` returns nothing."""
    exception, error = RAISES[request.param]

    def fail(ctx):
        raise exception

    registry.register("t.raise", fail)
    registry.register("t.ok", lambda ctx: None)
    yield error
    registry.unregister("t.raise")
    registry.unregister("t.ok")


def task(name, handler, **more):
    return {"task_name": name, "handler": handler, "retry": {"max_attempts": 1}, **more}


def test_a_worker_step_an_inline_step_and_a_compensation_record_the_same_error(
    raising, import_definition, system_actor, monkeypatch, django_capture_on_commit_callbacks
):
    record_steps(monkeypatch, lambda task_id, timeout: None)
    import_definition(
        definition_data(
            "errs",
            stages=[
                (
                    "A",
                    [
                        task("on_worker", "t.raise"),
                        task("inline", "t.raise", inline=True),
                        task("undone", "t.ok", compensate="t.raise"),
                    ],
                )
            ],
        )
    )
    process = engine.process_start(
        definition_key="errs", business_key="E-1", actor=system_actor
    ).process
    tasks = {t.name: t for t in process.tasks.all()}
    worker.run_step(tasks["on_worker"].pk)
    worker.run_step(tasks["undone"].pk)
    queued = []
    monkeypatch.setattr(
        "processes.queue.enqueue_compensation", lambda task_id, timeout: queued.append(task_id)
    )
    with django_capture_on_commit_callbacks(execute=True):
        engine.process_cancel(process_id=process.pk, actor=system_actor, reason="test")
    assert queued == [tasks["undone"].pk]
    worker.run_compensation(tasks["undone"].pk)

    errors = {t.name: t.last_error for t in process.tasks.all()}
    assert errors == {"on_worker": raising, "inline": raising, "undone": raising}
    assert process.tasks.get(name="undone").state == TaskState.COMPENSATION_FAILED
