"""Seam the engine calls after commit for people-facing notices (escalations, reminders)."""

import logging

logger = logging.getLogger(__name__)


def task_escalated(*, task_id, from_role: str, to_role: str | None) -> None:
    logger.warning("task %s escalated from %s to %s", task_id, from_role, to_role)
