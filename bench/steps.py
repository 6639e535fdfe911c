"""Step handlers the benches run (FLOWDESK_STEP_MODULES=bench.steps in their workers)."""

from processes.steps import RetryableStepError, step


@step("bench.flaky")
def flaky(ctx):
    """Fails its first attempt (a transient error), then succeeds: exercises the back-off."""
    if ctx.attempt == 1:
        raise RetryableStepError("first attempt fails")
    return {"attempt": ctx.attempt}
