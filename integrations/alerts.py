"""Seam the engine calls after commit when an incident opens. Issue #4 sends the SMS from here."""

import logging

logger = logging.getLogger(__name__)


def incident_opened(*, process_id, task_id, error: str) -> None:
    """Alert the on-call admins that a task failed for good."""
    logger.error("incident: process %s task %s failed: %s", process_id, task_id, error)
