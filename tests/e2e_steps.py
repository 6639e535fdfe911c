"""Step handlers for end-to-end tests, loaded by worker subprocesses via FLOWDESK_STEP_MODULES.

They stand in for an external system that honours idempotency keys: every call is logged, but
the *effect* is applied once per key (a file created exclusively).
"""

import dataclasses
import json
import os
import threading
import time
from pathlib import Path

from processes.steps import step


def _dir() -> Path:
    return Path(os.environ["E2E_DIR"])


@step("e2e.work")
def work(ctx):
    seconds = float(ctx.config.get("seconds", 0))
    started = time.time()
    with open(_dir() / "calls.log", "a") as log:
        log.write(
            json.dumps(
                {
                    "task": ctx.task_name,
                    "key": ctx.idempotency_key,
                    "pid": os.getpid(),
                    "thread": threading.get_ident(),
                    "start": started,
                }
            )
            + "\n"
        )
    time.sleep(seconds)
    gate = ctx.config.get("gate")
    while gate and not (_dir() / gate).exists() and time.time() < started + 300:
        time.sleep(0.05)  # held until the test opens the gate: a crash lands mid-step, however slow
    effects = _dir() / "effects"
    effects.mkdir(exist_ok=True)
    try:
        fd = os.open(
            effects / ctx.idempotency_key.replace(":", "_"), os.O_CREAT | os.O_EXCL | os.O_WRONLY
        )
        os.write(fd, json.dumps({"start": started, "end": time.time()}).encode())
        os.close(fd)
    except FileExistsError:
        pass  # the external system already applied this key: no second effect
    return {
        "task": ctx.task_name,
        "pid": os.getpid(),
        "thread": threading.get_ident(),
        "start": started,
        "end": time.time(),
    }


@step("e2e.undo")
def undo(ctx):
    """A compensation: ``undo_seconds`` long, its effect applied once per idempotency key."""
    return work(dataclasses.replace(ctx, config={"seconds": ctx.config.get("undo_seconds", 0)}))


@step("e2e.flaky")
def flaky(ctx):
    """Fails its first attempt (a transient error), then succeeds: exercises the back-off."""
    from processes.steps import RetryableStepError

    if ctx.attempt == 1:
        raise RetryableStepError("first attempt fails")
    return {"attempt": ctx.attempt}
