"""OpenAPI of the operators' repairs: the incidents, retry, skip, replay and reassign."""

from drf_spectacular.utils import extend_schema

from processes.api import schema as s
from processes.api import serializers as ser

INCIDENT_EXAMPLE = {
    "id": 91234,
    "state": "open",
    "process_id": "6f1c2b1e-3d4a-4e59-9a63-0c2f1d7e8a10",
    "process": "/api/processes/6f1c2b1e-3d4a-4e59-9a63-0c2f1d7e8a10/",
    "definition": "salary",
    "business_key": "E013-2026-11",
    "task_id": 4711,
    "task": "bonus",
    "task_state": "failed",
    "error": "bonus system: employee E013 has no rating",
    "opened_at": "2026-11-30T08:12:00Z",
    "age_seconds": 5400,
    "resolved_at": None,
    "repair": {
        "retry": "/api/tasks/4711/retry/",
        "skip": "/api/tasks/4711/skip/",
        "replay": "/api/tasks/4711/replay/",
    },
}

incidents = extend_schema(
    tags=["operations"],
    summary="Incidents: tasks that failed for good",
    description=(
        "Oldest first, of the definitions the caller sees. An incident opens when a task fails "
        "after its retries (a `process_failed` event) and is resolved by the next retry, skip, "
        "replay, completion or cancellation of that task. Filters: `state` (`open`, the "
        "default; `resolved`; `all`), `definition`, `older_than`/`younger_than` (ISO 8601 "
        "durations or seconds, by the time since it opened)."
    ),
    parameters=[ser.IncidentQuerySerializer],
    responses={200: ser.IncidentSerializer(many=True), **s.READ_ERRORS},
    examples=[s.response_example("page", s.page_of(INCIDENT_EXAMPLE), "200")],
)


def _repair(summary: str, description: str, request, examples=()):
    """A repair: answers the task and its process; needs ``operate_process`` (403 without it,
    404 for a task of a definition the caller doesn't see)."""
    return extend_schema(
        tags=["operations"],
        summary=summary,
        description=description
        + " Needs `operate_process` on the definition: without it 403; a task of a definition "
        "the caller doesn't see → 404. The same engine call and events as the admin's repair.",
        parameters=[s.IDEMPOTENCY_KEY],
        request=request,
        responses={200: ser.TaskActionResultSerializer, **s.WRITE_ERRORS},
        examples=list(examples),
    )


retry = _repair(
    "Retry a failed task",
    "Schedules the failed task again with a fresh attempt budget (a failed compensation: "
    "runs it again). Already scheduled → 200, nothing changed; any other state → 409.",
    ser.RepairSerializer,
    [s.request_example("retry", {"reason": "the bonus system is back"})],
)
skip = _repair(
    "Skip a task",
    "Marks a pending, scheduled or failed task skipped: what depends on it goes on. `set` "
    "gives the values later tasks read instead of its results, each checked against the "
    "definition's declared type (errors as `set.<path>`; needs `correct_variables` too); "
    "they are set in the same transaction (a `variables_changed` event with the same reason).",
    ser.SkipSerializer,
    [
        s.request_example(
            "skip with a value",
            {"reason": "rating agreed by phone", "set": {"bonus.amount": "409.32"}},
        )
    ],
)
replay = _repair(
    "Replay a task",
    "Runs the task again, with what depends on it in its stage and every later stage "
    "(a completed process reopens). A cancelled process → 409.",
    ser.RepairSerializer,
    [s.request_example("replay", {"reason": "accounting corrected the base"})],
)
reassign = _repair(
    "Reassign an open human task",
    "Gives the task to a person (`to_user`: they hold it, any claim ends) or a role "
    "(`to_role`: its members may claim it), with a `reason` kept in the history "
    "(`task_reassigned`). Separation of duties still holds: a person it bars → 400 naming "
    "`to_user`. Not an open human task, or already theirs → 409.",
    ser.ReassignSerializer,
    [s.request_example("to a person", {"to_user": "carl", "reason": "bob is on holiday"})],
)
