"""Rebuild an instance's state from its events alone, and compare it with what is stored."""

from __future__ import annotations

from dataclasses import dataclass, field

from processes.events import chain
from processes.models import EventType, ProcessEvent, ProcessInstance
from processes.spec import apply_variable_changes

TASK_STATE_AFTER = {
    EventType.TASK_SCHEDULED: "scheduled",
    EventType.TASK_STARTED: "running",
    EventType.TASK_COMPLETED: "completed",
    EventType.TASK_ATTEMPT_FAILED: "scheduled",
    EventType.TASK_FAILED: "failed",
    EventType.TASK_RETRIED: "scheduled",
    EventType.TASK_REQUEUED: "scheduled",
    EventType.TASK_SKIPPED: "skipped",
    EventType.TASK_CANCELLED: "cancelled",
    EventType.TASK_RESET: "pending",
    EventType.COMPENSATION_SCHEDULED: "compensating",
    EventType.COMPENSATION_STARTED: "compensation_running",
    EventType.COMPENSATION_COMPLETED: "compensated",
    EventType.COMPENSATION_ATTEMPT_FAILED: "compensating",
    EventType.COMPENSATION_FAILED: "compensation_failed",
    EventType.COMPENSATION_REQUEUED: "compensating",
    EventType.COMPENSATION_RETRIED: "compensating",
    EventType.COMPENSATION_SKIPPED: "skipped",
}
PROCESS_STATE_AFTER = {
    EventType.PROCESS_STARTED: "running",
    EventType.PROCESS_COMPLETED: "completed",
    EventType.PROCESS_FAILED: "failed",
    EventType.PROCESS_RESUMED: "running",
    EventType.PROCESS_CANCELLED: "cancelled",
    EventType.PROCESS_REOPENED: "running",
    EventType.PROCESS_CANCELLING: "cancelling",
    EventType.PROCESS_COMPENSATED: "compensated",
}


@dataclass
class Snapshot:
    state: str = ""
    current_stage: str = ""
    business_status: str = ""
    variables: dict = field(default_factory=dict)
    tasks: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BusinessStatuses:
    """The business statuses a spec's tasks set: ``waiting`` when one is scheduled (its
    ``waiting_status``), ``done`` when one completes (its ``business_status``)."""

    done: dict[str, str] = field(default_factory=dict)
    waiting: dict[str, str] = field(default_factory=dict)


def rebuild(events, business_status_of: BusinessStatuses | dict | None = None) -> Snapshot:
    """Fold events (in sequence order) into the state they imply; ``business_status_of`` (a
    plain dict: completion statuses only) says which event sets which business status."""
    snap = Snapshot()
    if not isinstance(business_status_of, BusinessStatuses):
        business_status_of = BusinessStatuses(done=dict(business_status_of or {}))
    for event in events:
        etype, data = event.type, event.data or {}
        if etype in PROCESS_STATE_AFTER:
            if etype == EventType.PROCESS_REOPENED and snap.state in ("failed",):
                pass  # a replay of a failed process keeps the incident until resolved
            elif etype == EventType.PROCESS_FAILED and snap.state == "cancelling":
                pass  # a compensation failed for good: an incident, still cancelling
            else:
                snap.state = PROCESS_STATE_AFTER[etype]
        if etype == EventType.PROCESS_STARTED:
            snap.variables = dict(data.get("input") or {})
        elif etype in (EventType.STAGE_STARTED,):
            snap.current_stage = data.get("stage", "")
        elif etype == EventType.PROCESS_REOPENED:
            snap.current_stage = data.get("stage", snap.current_stage)
        elif etype == EventType.PROCESS_MIGRATED:  # tasks renamed, dropped, added
            renamed = {}
            for old, new in (data.get("mapping") or {}).items():
                if old in snap.tasks:
                    renamed[new] = snap.tasks[old]
            snap.tasks = renamed
        elif etype == EventType.PROCESS_SENT_BACK:  # a rework loop: its ``rework`` variable
            snap.variables["rework"] = data.get("rework")
        elif etype == EventType.VARIABLES_UPDATED:  # merged by seed events before 2026-11
            snap.variables.update(data.get("changes") or {})
        elif etype == EventType.VARIABLES_CHANGED:
            changes = data.get("changes") or {}
            snap.variables, _ = apply_variable_changes(
                snap.variables,
                {path: c["after"] for path, c in changes.items() if "after" in c},
                [path for path, c in changes.items() if "after" not in c],
            )
        if event.task_name and etype in TASK_STATE_AFTER:
            snap.tasks[event.task_name] = TASK_STATE_AFTER[etype]
            if etype == EventType.TASK_SCHEDULED:
                status = business_status_of.waiting.get(event.task_name)
                if status:
                    snap.business_status = status
            elif etype == EventType.TASK_COMPLETED:
                snap.variables[event.task_name] = data.get("result")
                status = business_status_of.done.get(event.task_name)
                if status:
                    snap.business_status = status
    return snap


@dataclass
class PointInTime:
    """A process as its events say it was at ``as_of``: the snapshot and the last event folded."""

    as_of: object
    snapshot: Snapshot
    last_seq: int
    last_event_at: object


def business_statuses(process: ProcessInstance) -> BusinessStatuses:
    spec = process.definition.parsed()
    return BusinessStatuses(
        done={t.name: t.business_status for t in spec.tasks if t.business_status},
        waiting={t.name: t.waiting_status for t in spec.tasks if t.waiting_status},
    )


def state_at(process: ProcessInstance, as_of) -> PointInTime | None:
    """The state rebuilt from the events recorded up to ``as_of`` (an aware datetime); None when
    the process had no event yet then."""
    events = list(
        ProcessEvent.objects.filter(process=process, created_at__lte=as_of).order_by("seq")
    )
    if not events:
        return None
    snapshot = rebuild(events, business_statuses(process))
    return PointInTime(as_of, snapshot, events[-1].seq, events[-1].created_at)


def differences(process: ProcessInstance) -> list[str]:
    """What the stored state says that the events don't (empty when they agree), and the first
    broken link of the events' hash chain."""
    statuses = business_statuses(process)
    events = list(ProcessEvent.objects.filter(process=process).order_by("seq"))
    snap = rebuild(events, statuses)
    problems = []
    broken = chain.first_broken(events)
    if broken:
        problems.append(broken)
    elif process.last_hash and (not events or events[-1].hash != process.last_hash):
        last = f"#{events[-1].seq}" if events else "the start"
        problems.append(f"events after {last}: missing (the chain ends elsewhere)")
    if snap.state != process.state:
        problems.append(f"state: stored {process.state!r}, events say {snap.state!r}")
    if snap.current_stage != process.current_stage:
        problems.append(
            f"current_stage: stored {process.current_stage!r}, events say {snap.current_stage!r}"
        )
    if snap.business_status != process.business_status:
        problems.append(
            f"business_status: stored {process.business_status!r}, "
            f"events say {snap.business_status!r}"
        )
    if snap.variables != process.variables:
        problems.append("variables: stored values differ from the events")
    for task in process.tasks.all():
        expected = snap.tasks.get(task.name, "pending")
        if expected != task.state:
            problems.append(f"task {task.name}: stored {task.state!r}, events say {expected!r}")
    return problems
