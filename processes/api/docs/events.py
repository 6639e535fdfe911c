"""OpenAPI of the seed's event protocol: ``POST /api/events/`` and the queues of external tasks."""

from drf_spectacular.utils import OpenApiResponse, extend_schema

from processes.api import schema as s
from processes.api import serializers as ser

_ORDER = {"business_ref_no": "ORDER-001", "component_name": "ITALIAN"}
_TASK = {
    **_ORDER,
    "event_name": "TaskCompleted",
    "stage_name": "ORDER",
    "task_name": "confirm_order",
    "task_type": "SERVICE",
}

send_event = extend_schema(
    tags=["events"],
    summary="Send a seed event",
    description=(
        "The seed workflow manager's events: `StartWorkflow` (needs `start_process`), "
        "`TaskCompleted`, `TaskFailed`, `TaskPending` (need `operate_process`). "
        "`component_name` (or `definition`, a key) finds the definition; `business_ref_no` "
        "the newest instance. Optional `data` is merged into the process variables.\n\n"
        "202: applied. 200: changed nothing (a repeat: `duplicate: true`, or StartWorkflow "
        "for an active business key), recorded in the history. 409: the event does not fit "
        "the task's state (out of order, e.g. TaskCompleted for a pending task); recorded "
        "too, nothing changes."
    ),
    parameters=[s.IDEMPOTENCY_KEY],
    request=ser.SeedEventSerializer,
    responses={
        202: ser.SeedEventResultSerializer,
        200: OpenApiResponse(
            ser.SeedEventResultSerializer, description="Duplicate: recorded, nothing changed."
        ),
        **s.WRITE_ERRORS,
    },
    examples=[
        s.request_example("StartWorkflow", {**_ORDER, "event_name": "StartWorkflow"}),
        s.request_example("TaskCompleted", {**_TASK, "data": {"eta_minutes": 30}}),
        s.request_example(
            "TaskFailed", {**_TASK, "event_name": "TaskFailed", "error": "oven broken"}
        ),
        s.request_example("TaskPending", {**_TASK, "event_name": "TaskPending"}),
        s.response_example(
            "applied",
            {
                "event_name": "TaskCompleted",
                "duplicate": False,
                "process": {**s.PROCESS_EXAMPLE, "business_status": "ORDER CONFIRMED"},
                "task": {**s.TASK_EXAMPLE, "state": "completed"},
                "scheduled": ["make_food", "assign_executive"],
            },
            "202",
        ),
    ],
)

queue_tasks = extend_schema(
    tags=["events"],
    summary="Scheduled tasks of a task queue (for external workers)",
    description=(
        "The seed's `StartTask` payloads of every scheduled external task (a SERVICE task "
        "without a handler) in `task_queue`, oldest first, on definitions where the caller "
        "has `operate_process`. A worker does the work and answers with `TaskCompleted` or "
        "`TaskFailed` on `POST /api/events/`. Polling is safe: a task stays listed until "
        "an event closes it."
    ),
    responses={200: ser.StartTaskSerializer(many=True), **s.READ_ERRORS},
    examples=[s.response_example("queue", s.page_of(s.START_TASK_EXAMPLE), "200")],
)

_LOCKED = {
    **s.START_TASK_EXAMPLE,
    "locked_by": "carrier-worker-1",
    "lock_expires_at": "2026-12-07T10:05:00Z",
}

queue_lock = extend_schema(
    tags=["events"],
    summary="Lock tasks of a queue for one worker (fetch-and-lock)",
    description=(
        "Up to `max_tasks` scheduled external tasks of `task_queue` (oldest first, on "
        "definitions where the caller has `operate_process`) that nobody holds, locked for "
        "`worker_id` during `lock_seconds`: no other `lock` gets them meanwhile, and only "
        "`worker_id` may answer them (`TaskCompleted`/`TaskFailed` with `worker_id`; another "
        "worker's answer is 409, recorded). Once the lock expires the task is back in the queue. "
        "An empty list: nothing to do now. The plain listing `GET .../tasks/` still lists every "
        "scheduled task, locked or not."
    ),
    request=ser.LockSerializer,
    responses={200: ser.LockedTaskSerializer(many=True), **s.WRITE_ERRORS},
    examples=[
        s.request_example(
            "lock", {"worker_id": "carrier-worker-1", "max_tasks": 10, "lock_seconds": 300}
        ),
        s.response_example("locked", [_LOCKED], "200"),
    ],
)

queue_extend = extend_schema(
    tags=["events"],
    summary="Keep a locked task longer",
    description=(
        "The lock of `worker_id` on the task lasts `lock_seconds` from now. 409 when the worker "
        "no longer holds it (it expired, or another worker took it since)."
    ),
    request=ser.LockExtendSerializer,
    responses={200: ser.LockedTaskSerializer, **s.WRITE_ERRORS},
)

queue_unlock = extend_schema(
    tags=["events"],
    summary="Give a locked task back to its queue",
    description=(
        "Ends `worker_id`'s lock now: the next `lock` may take the task. 409 when the worker "
        "doesn't hold it."
    ),
    request=ser.UnlockSerializer,
    responses={200: ser.LockedTaskSerializer, **s.WRITE_ERRORS},
)

send_message = extend_schema(
    tags=["events"],
    summary="Send a message to the processes waiting for it",
    description=(
        "A message from another system for the MESSAGE tasks waiting for `name` whose "
        "correlation key (the value of their `message.key` variable) is `correlation_key`. "
        "Its `data` lands under each task's name, checked against the task's `result` (400 "
        "naming the field, e.g. `data.amount`); `occurred_at` is kept beside the time it is "
        "recorded. Needs `operate_process` on every definition with a task waiting for `name`.\n\n"
        "202: delivered (`reached` lists the tasks, `processes` the processes), or kept for "
        "`buffer` (`buffered: true`): the first task that starts waiting for it in that time "
        "gets it, once. 404: nothing waits and no `buffer`. 200: a repeat (the same "
        "`message_id`, or the same `Idempotency-Key`): nothing changed."
    ),
    parameters=[s.IDEMPOTENCY_KEY],
    request=ser.MessageSerializer,
    responses={
        202: ser.MessageResultSerializer,
        200: OpenApiResponse(ser.MessageResultSerializer, description="A repeat: nothing changed."),
        **s.WRITE_ERRORS,
    },
    examples=[
        s.request_example(
            "payment",
            {
                "name": "payment_received",
                "correlation_key": "ORD-1001",
                "data": {"amount": "120.00"},
                "occurred_at": "2026-12-07T09:15:00+01:00",
                "message_id": "bank-7781",
                "buffer": "PT1H",
            },
        ),
    ],
)
