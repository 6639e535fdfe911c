"""The pizza shop's kitchen and courier, simulated for the demo.

The ``pizza`` definition waits on outside systems: each of its SERVICE tasks has a queue and no
handler. These two work them as the seed's systems would, over HTTP with an API token: read a
queue (``GET /api/queues/<queue>/tasks/``) and answer each task with the seed's own
``TaskCompleted`` event (``POST /api/events/``). The kitchen confirms the order and makes the
food; the courier service assigns the courier and confirms the pick-up. The delivery itself is
a HUMAN task: the courier confirms it in the inbox.
"""

from __future__ import annotations

import logging
import threading

import httpx

logger = logging.getLogger(__name__)

# queue -> (who works it, the result it reports)
WORK = {
    "confirm_order_queue": ("kitchen", {"confirmed": True}),
    "make_food_queue": ("kitchen", {"baked": True, "oven": "stone oven 2"}),
    "assign_executive_queue": ("courier service", {"courier": "courier"}),
    "confirm_delivery_queue": ("courier service", {"picked_up": True}),
}


def work_once(client: httpx.Client) -> list[str]:
    """Answer every task waiting in the pizza queues once; what was done, as lines."""
    done = []
    for queue, (who, result) in WORK.items():
        answer = client.get(f"/api/queues/{queue}/tasks/")
        answer.raise_for_status()
        for task in answer.json().get("results", []):
            event = {
                "event_name": "TaskCompleted",
                "business_ref_no": task["business_ref_no"],
                "component_name": task["component_name"],
                "stage_name": task["stage_name"],
                "task_name": task["task_name"],
                "data": result,
            }
            posted = client.post("/api/events/", json=event)
            if posted.status_code in (200, 202):
                done.append(f"{who}: {task['business_ref_no']} {task['task_name']}")
            else:  # (another round will see it again if it still waits)
                logger.warning("%s: %s answered %s", who, task["task_name"], posted.text[:200])
    return done


def run(base_url: str, token: str, stop: threading.Event, *, interval: float = 2.0, out=None):
    """Work the queues every ``interval`` seconds until ``stop`` is set (at least once)."""
    headers = {"Authorization": f"Token {token}", "User-Agent": "pizza-kitchen/1.0"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=10) as client:
        while True:
            try:
                for line in work_once(client):
                    if out is not None:
                        out.write(f"  {line}\n")
            except httpx.HTTPError as exc:
                logger.warning("kitchen: %s", exc)
            if stop.is_set() or stop.wait(interval):
                return
