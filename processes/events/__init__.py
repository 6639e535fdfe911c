"""One creator per event type. The engine calls these inside its transaction, with the process
row locked, so the per-instance sequence number is gapless and ordered.

Every creator is keyword-only: ``log`` is the unit of work's ``EventLog`` (its ``process`` the
subject), ``actor`` who did it, ``task`` the task concerned (if any). Events wait in the log
and are written in one INSERT by ``flush`` at the end of the engine's transaction.

One module per subject: ``buffer`` (the actor and the buffer), ``process_events``,
``task_events``, ``compensation_events``; every creator is importable from ``processes.events``.
"""

from __future__ import annotations

from processes.events.buffer import (  # noqa: F401
    SYSTEM,
    Actor,
    EventLog,
    _append,
    definition_event,
    flush,
    take_pending,
    written,
)
from processes.events.compensation_events import (  # noqa: F401
    compensation_attempt_failed,
    compensation_completed,
    compensation_failed,
    compensation_requeued,
    compensation_retried,
    compensation_scheduled,
    compensation_skipped,
    compensation_started,
    process_cancelling,
    process_deadline_passed,
    task_timed_out,
)
from processes.events.process_events import (  # noqa: F401
    process_cancelled,
    process_compensated,
    process_completed,
    process_failed,
    process_migrated,
    process_reopened,
    process_resumed,
    process_sent_back,
    process_started,
    stage_completed,
    stage_started,
    subprocess_finished,
    subprocess_started,
    variables_changed,
)
from processes.events.task_events import (  # noqa: F401
    SKIP_CAUSES,
    SKIP_CONDITION,
    SKIP_DEADLINE,
    SKIP_OPERATOR,
    attachment_added,
    compensation_run,
    message_received,
    notification_failed,
    notification_sent,
    task_attempt_failed,
    task_cancelled,
    task_claimed,
    task_completed,
    task_delegated,
    task_duplicate,
    task_escalated,
    task_failed,
    task_reassigned,
    task_released,
    task_reminded,
    task_requeued,
    task_reset,
    task_retried,
    task_scheduled,
    task_skipped,
    task_started,
    task_substituted,
)
