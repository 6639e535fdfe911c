"""The only code that changes process and task state, by use case.

Every public function is one or more transactions that lock the ProcessInstance row, apply
django-fsm transitions, append events, decide what becomes ready and commit. Side effects happen
after commit and never from here directly: steps are queued through ``processes.queue``, and what
the outside world may care about is announced through ``processes.hooks``. The engine imports no
adapter (API, admin, inbox, integrations, worker).

- ``definitions``: import, publish, retire, edit drafts;
- ``start``: start a process; ``batch``: start many (the monthly run);
- ``steps``: service steps (lease, complete, fail, queue again after a restart), for the workers;
- ``compensation``: a cancelled process's compensations, run like steps (``cancelling``);
- ``human``: claim, release, delegate, decide;
- ``absences``: record absences; their holders' tasks go to the substitute (or the role);
- ``operate``: retry, skip, replay, reassign, cancel (and the children's cancellation), correct variables;
- ``timers``: act on due timers (re-enqueue, reclaim a lease, escalate, wait deadlines) and on
  process deadlines; the sweep and the loop that run them;
- ``seed_events``: the seed's event protocol;
- ``waits``, ``messages``: TIMER and MESSAGE tasks; messages from other systems, correlated
  or buffered;
- ``notices``: record notifications in the history;
- ``attachments``: files on a case (checked, stored per case under their SHA-256, recorded);
- ``retention``: archive closed processes past their retention (and their files), then delete
  them;
- ``rework``, ``subprocess``, ``migrate``: rework loops, call activities (their children start
  by queued work), version migration;
- ``_run``: the unit of work and the scheduling decisions they share.
"""

from processes.engine import subprocess  # noqa: F401  (its _Run.finish hook)
from processes.engine._run import (
    HUMAN_TASK_REFUSAL,
    PROCESS_FIELDS,
    PROCESS_WRITTEN_ONCE,
    TASK_FIELDS,
    TASK_WRITTEN_ONCE,
    TaskResult,
)
from processes.engine.absences import absence_end, absence_record, absences_apply
from processes.engine.attachments import attachment_add
from processes.engine.batch import BatchItem, process_start_batch
from processes.engine.compensation import (
    compensation_complete,
    compensation_fail,
    compensation_start,
)
from processes.engine.definitions import (
    definition_import,
    definition_publish,
    definition_retire,
    definition_update_draft,
)
from processes.engine.external import task_lock_extend, task_unlock, tasks_lock
from processes.engine.human import task_claim, task_decide, task_delegate, task_release
from processes.engine.messages import MessageOutcome, message_receive
from processes.engine.migrate import (
    InstancePlan,
    migrate_instances,
    migration_plan,
    process_migrate,
)
from processes.engine.notices import notification_record
from processes.engine.operate import (
    children_cancel,
    process_cancel,
    process_correct_variables,
    reassign_task,
    stage_replay,
    task_replay,
    task_retry,
    task_skip,
    user_named,
)
from processes.engine.retention import ArchiveError, ArchiveReport, processes_archive
from processes.engine.seed_events import (
    SEED_EVENTS,
    EventOutcome,
    handle_seed_event,
    task_event_rejected,
)
from processes.engine.start import StartResult, process_start
from processes.engine.steps import (
    StepLease,
    StepOutcome,
    compensation_context,
    compensation_record,
    steps_report,
    task_complete,
    task_fail,
    task_start,
    tasks_start,
)
from processes.engine.subprocess import children_start
from processes.engine.timers import (
    next_wake,
    process_deadline,
    requeue_scheduled,
    task_wake,
    timer_loop,
    timers_sweep,
)
from processes.events import SYSTEM

__all__ = [
    "absence_end",
    "absence_record",
    "absences_apply",
    "attachment_add",
    "ArchiveError",
    "ArchiveReport",
    "processes_archive",
    "HUMAN_TASK_REFUSAL",
    "PROCESS_FIELDS",
    "PROCESS_WRITTEN_ONCE",
    "SEED_EVENTS",
    "SYSTEM",
    "TASK_FIELDS",
    "TASK_WRITTEN_ONCE",
    "BatchItem",
    "EventOutcome",
    "InstancePlan",
    "MessageOutcome",
    "StartResult",
    "StepLease",
    "StepOutcome",
    "TaskResult",
    "children_cancel",
    "children_start",
    "compensation_complete",
    "compensation_context",
    "compensation_fail",
    "compensation_record",
    "compensation_start",
    "definition_import",
    "definition_publish",
    "definition_retire",
    "definition_update_draft",
    "handle_seed_event",
    "migrate_instances",
    "message_receive",
    "task_lock_extend",
    "task_unlock",
    "tasks_lock",
    "migration_plan",
    "next_wake",
    "notification_record",
    "process_cancel",
    "process_correct_variables",
    "process_migrate",
    "process_deadline",
    "process_start",
    "process_start_batch",
    "reassign_task",
    "user_named",
    "requeue_scheduled",
    "stage_replay",
    "task_claim",
    "task_complete",
    "task_decide",
    "task_delegate",
    "task_event_rejected",
    "task_fail",
    "task_release",
    "task_replay",
    "task_retry",
    "task_skip",
    "task_start",
    "tasks_start",
    "steps_report",
    "task_wake",
    "timer_loop",
    "timers_sweep",
]
