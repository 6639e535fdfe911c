"""Recording in a process's history that people were told (or could not be told)."""

from __future__ import annotations

import logging

from django.db import transaction

from processes import events
from processes.engine._run import (
    _lock,
    _lock_for_task,
)
from processes.events import Actor

logger = logging.getLogger(__name__)


@transaction.atomic
def notification_record(
    *,
    actor: Actor,
    channel: str,
    recipients,
    process_id=None,
    task_id=None,
    message: str = "",
    error: str | None = None,
    reminder: bool = False,
) -> None:
    """Record in the history that people were told about a process or task, or could not be.

    ``error`` set: ``notification_failed``; a ``reminder`` of an overdue human task:
    ``task_reminded``; else ``notification_sent``. Give ``process_id``, ``task_id`` or both.
    """
    if process_id is None:
        run, task = _lock_for_task(task_id)
    else:
        run = _lock(process_id)
        task = next((t for t in run.tasks.values() if t.pk == task_id), None)
    recipients = list(recipients)
    if error:
        events.notification_failed(
            log=run.log,
            actor=actor,
            task=task,
            channel=channel,
            error=error[:2000],
            recipients=recipients,
        )
    elif reminder:
        events.task_reminded(log=run.log, actor=actor, task=task, recipients=recipients)
    else:
        events.notification_sent(
            log=run.log,
            actor=actor,
            task=task,
            channel=channel,
            recipients=recipients,
            message=message,
        )
    run.save()
