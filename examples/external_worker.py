"""An external worker that locks its tasks (fetch-and-lock), with httpx: the example of
docs/guides/api-clients.md, run by tests/examples/test_external_worker.py against a real server.

    python -m examples.external_worker http://127.0.0.1:8000 kitchen kitchen-pw confirm_order_queue

Each round locks up to ``max_tasks`` tasks of the queue for this worker alone; no other worker
gets them until the lock expires. The worker keeps a lock it still needs (``extend``), gives back
one it won't do (``unlock``) and answers each with its ``worker_id``: another worker's answer
to a task it holds is refused (409).
"""

from __future__ import annotations

import socket
import sys
import time

import httpx

from examples.api_client import connect


# --8<-- [start:lock]
def lock(
    api: httpx.Client, task_queue: str, worker_id: str, max_tasks: int = 10, lock_seconds: int = 300
) -> list[dict]:
    """Lock up to ``max_tasks`` free tasks of ``task_queue`` for ``worker_id``: StartTask
    payloads with ``task_id``, ``locked_by`` and ``lock_expires_at``. [] when there is none."""
    answer = api.post(
        f"/api/queues/{task_queue}/lock/",
        json={"worker_id": worker_id, "max_tasks": max_tasks, "lock_seconds": lock_seconds},
    )
    answer.raise_for_status()
    return answer.json()


def extend(api: httpx.Client, task: dict, worker_id: str, lock_seconds: int = 300) -> dict:
    """Keep ``task`` ``lock_seconds`` more from now (409: the lock was lost meanwhile)."""
    url = f"/api/queues/{task['task_queue']}/tasks/{task['task_id']}/extend/"
    answer = api.post(url, json={"worker_id": worker_id, "lock_seconds": lock_seconds})
    answer.raise_for_status()
    return answer.json()


def unlock(api: httpx.Client, task: dict, worker_id: str) -> dict:
    """Give ``task`` back to its queue now: the next ``lock`` may take it."""
    url = f"/api/queues/{task['task_queue']}/tasks/{task['task_id']}/unlock/"
    answer = api.post(url, json={"worker_id": worker_id})
    answer.raise_for_status()
    return answer.json()


# --8<-- [end:lock]
# --8<-- [start:answer]
def answer(api: httpx.Client, task: dict, worker_id: str, result=None, error=None) -> int:
    """``TaskCompleted`` with ``result`` (or ``TaskFailed`` with ``error``) for a locked task.
    The status: 202 applied, 200 a repeat, 409 the task is someone else's (or closed)."""
    keys = ("business_ref_no", "component_name", "stage_name", "task_name", "task_type")
    event = {key: task[key] for key in keys} | {"worker_id": worker_id}
    if error is None:
        event |= {"event_name": "TaskCompleted", "data": result or {}}
    else:
        event |= {"event_name": "TaskFailed", "error": str(error)}
    sent = api.post("/api/events/", json=event)
    if sent.status_code != 409:
        sent.raise_for_status()
    return sent.status_code


def work(
    api: httpx.Client,
    task_queue: str,
    handle,
    worker_id: str | None = None,
    lock_seconds: int = 300,
    rounds: int | None = None,
    idle: float = 1.0,
) -> int:
    """Lock, do (``handle(task) -> dict``), answer; again. ``rounds``: stop after that many
    rounds (None: for ever), sleeping ``idle`` seconds when the queue is empty. The number of
    tasks completed."""
    worker_id = worker_id or f"{socket.gethostname()}:{id(api)}"
    done, round_ = 0, 0
    while rounds is None or round_ < rounds:
        round_ += 1
        tasks = lock(api, task_queue, worker_id, lock_seconds=lock_seconds)
        if not tasks:
            time.sleep(idle)
            continue
        for task in tasks:
            try:
                result = handle(task)
            except Exception as exc:  # our failure: the process's incident (or its saga)
                answer(api, task, worker_id, error=exc)
                continue
            if answer(api, task, worker_id, result=result) == 202:
                done += 1
    return done


# --8<-- [end:answer]

if __name__ == "__main__":
    base_url, username, password, queue = sys.argv[1:5]
    work(connect(base_url, username, password), queue, lambda task: {"done_by": "example"})
