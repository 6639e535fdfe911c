"""Flowdesk's REST API from another system, with httpx: the examples of
docs/guides/api-clients.md, run by tests/examples/test_api_client.py against a real server.

    python examples/api_client.py http://127.0.0.1:8000 admin admin   # the pizza flow, end to end
"""

from __future__ import annotations

import sys
import time

import httpx


# --8<-- [start:connect]
def connect(base_url: str, username: str, password: str) -> httpx.Client:
    """A client that sends the account's token on every call."""
    answer = httpx.post(
        f"{base_url}/api/auth/token/", json={"username": username, "password": password}
    )
    answer.raise_for_status()  # 400: wrong credentials; 429: locked out for a while
    token = answer.json()["token"]
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Token {token}"}, timeout=10)


# --8<-- [end:connect]
# --8<-- [start:start]
def start(api: httpx.Client, definition: str, business_key: str, input: dict) -> dict:
    """Start a process; the same business key while it is active answers the same instance."""
    answer = api.post(
        "/api/processes/",
        json={"definition": definition, "business_key": business_key, "input": input},
        # a retry after a timeout gets the first answer again, never a second start
        headers={"Idempotency-Key": f"start-{definition}-{business_key}"},
    )
    if answer.status_code == 400:
        raise ValueError(answer.json()["error"]["fields"])  # e.g. {"business_key": [...]}
    answer.raise_for_status()  # 201: started; 200: it was already there
    return answer.json()


# --8<-- [end:start]
# --8<-- [start:follow]
def follow(api: httpx.Client, process_id: str, *, until=("completed",), seconds=60) -> dict:
    """Poll the process until its state is one of ``until`` (or it has an incident)."""
    deadline = time.monotonic() + seconds
    while True:
        process = api.get(f"/api/processes/{process_id}/").raise_for_status().json()
        if process["state"] in (*until, "failed", "cancelled"):
            return process
        if time.monotonic() > deadline:
            raise TimeoutError(f"{process_id} is still {process['state']}")
        time.sleep(1)


def history(api: httpx.Client, process_id: str, after: int = 0) -> list[dict]:
    """The audit log after event ``after`` (a seq), in order: read on from the last seq seen."""
    events, url = [], f"/api/processes/{process_id}/events/?after={after}"
    while url:
        page = api.get(url).raise_for_status().json()
        events += page["results"]
        url = page["next"]  # absolute URL of the next page, or None
    return events


# --8<-- [end:follow]
# --8<-- [start:seed]
def send_event(api: httpx.Client, event: dict) -> dict:
    """One of the seed's events (StartWorkflow, TaskCompleted, TaskFailed, TaskPending)."""
    answer = api.post("/api/events/", json=event)
    if answer.status_code == 409:  # out of order: recorded, nothing changed
        raise RuntimeError(answer.json()["error"]["message"])
    answer.raise_for_status()  # 202: applied; 200: a repeat, nothing changed
    return answer.json()


# --8<-- [end:seed]
# --8<-- [start:worker]
def work_queue(api: httpx.Client, task_queue: str, handle) -> int:
    """An external worker's round: take the scheduled tasks of ``task_queue`` (StartTask
    payloads, oldest first), do each one (``handle(task) -> dict``), report it done."""
    done = 0
    for task in api.get(f"/api/queues/{task_queue}/tasks/").raise_for_status().json()["results"]:
        try:
            result = handle(task)
        except Exception as exc:  # our failure: an incident on the process, retried by an operator
            send_event(api, {**_about(task), "event_name": "TaskFailed", "error": str(exc)})
            continue
        send_event(api, {**_about(task), "event_name": "TaskCompleted", "data": result})
        done += 1
    return done


def _about(task: dict) -> dict:
    keys = ("business_ref_no", "component_name", "stage_name", "task_name", "task_type")
    return {key: task[key] for key in keys}


# --8<-- [end:worker]
# --8<-- [start:human]
def decide_my_tasks(api: httpx.Client, decision: str | None = None) -> list[str]:
    """A person's client: decide every task in their inbox (what the inbox page does)."""
    decided = []
    for task in api.get("/api/inbox/").raise_for_status().json()["results"]:
        answer = api.post(f"/api/tasks/{task['id']}/complete/", json={"decision": decision})
        if answer.status_code in (403, 409):  # not yours to decide / decided meanwhile
            continue
        answer.raise_for_status()
        decided.append(task["business_key"])
    return decided


# --8<-- [end:human]


def pizza_flow(base_url: str, username: str, password: str, courier: tuple[str, str]) -> dict:
    """The seed's "Deliver Pizza" end to end: start, the kitchen's external tasks, the courier."""
    api = connect(base_url, username, password)
    order = start(api, "pizza", "ORDER-4711", {"size": "L"})
    for queue in ("confirm_order_queue", "make_food_queue", "assign_executive_queue"):
        work_queue(api, queue, lambda task: {"by": "kitchen"})
    work_queue(api, "confirm_delivery_queue", lambda task: {"eta_minutes": 20})
    decide_my_tasks(connect(base_url, *courier))
    return follow(api, order["id"])


if __name__ == "__main__":
    base, user, password = sys.argv[1:4]
    done = pizza_flow(base, user, password, courier=("courier", "courier"))
    print(done["state"], done["business_status"])
