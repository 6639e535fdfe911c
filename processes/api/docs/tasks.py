"""OpenAPI of the inbox and the human tasks: one task, claim, release, complete, delegate."""

from drf_spectacular.utils import extend_schema

from processes.api import schema as s
from processes.api import serializers as ser

inbox = extend_schema(
    tags=["tasks"],
    summary="Open human tasks the caller may act on",
    description=(
        "Tasks of the caller's roles (Django groups named by the task's role), assigned to "
        "or claimed by the caller; earliest due first."
    ),
    responses={200: ser.InboxTaskSerializer(many=True), **s.READ_ERRORS},
)

task_detail = extend_schema(
    tags=["tasks"],
    summary="One human task",
    description=(
        "The task as the caller may see it: who holds it, what the caller may do (`can`, "
        "with the plain-words `refusal` when separation of duties bars them), and, for "
        "those who may read it, the variables its deciders see (the task's `show` list), "
        "its result, and the `corrections` of the variables made since the process's "
        "previous human decision (who, when, the reason, and the changed paths the task's "
        "deciders may see; a correction of nothing they see is left out). Not visible to "
        "the caller → 404."
    ),
    responses={200: ser.TaskDetailSerializer, **s.READ_ERRORS},
)


def _action(summary: str, description: str, request=None, examples=()):
    """A task action: answers the task and its process (``TaskActionResultSerializer``)."""
    return extend_schema(
        tags=["tasks"],
        summary=summary,
        description=description,
        parameters=[s.IDEMPOTENCY_KEY],
        request=request,
        responses={200: ser.TaskActionResultSerializer, **s.WRITE_ERRORS},
        examples=list(examples),
    )


claim = _action(
    "Claim a human task",
    "Locks the task to the caller. Claimed by someone else or closed → 409.",
)
release = _action(
    "Release a claimed human task",
    "Returns the task to its role. Claimed by someone else or closed → 409.",
)
complete = _action(
    "Complete (decide) a human task",
    "`decision` must be one of the task's outcomes (if it has any); `data` holds its "
    "form fields (errors are reported as `data.<field>`). A closed task → 409 (the "
    "attempt is recorded in the history).",
    request=ser.TaskCompleteSerializer,
    examples=[
        s.request_example(
            "approve", {"decision": "approve", "comment": "fine", "data": {"amount": 1200}}
        )
    ],
)
delegate = _action(
    "Delegate a human task",
    "Assigns the task to another member of its role.",
    request=ser.TaskDelegateSerializer,
    examples=[s.request_example("delegate", {"to": "bob", "comment": "on leave"})],
)
