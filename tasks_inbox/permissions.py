"""Seam the engine calls (inside its transaction) when a human task opens, moves or closes.

Issue #3 grants and revokes django-guardian object permissions here.
"""


def task_opened(task) -> None:
    """``task`` now waits for a person of ``task.candidate_role`` (or ``task.assignee``)."""


def task_reassigned(task) -> None:
    """``task``'s role, assignee or claimant changed."""


def task_closed(task) -> None:
    """``task`` no longer waits for anyone."""
