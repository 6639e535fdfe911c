"""Rework loops: a decision outcome that sends the process back to an earlier stage
(``"outcomes": {"rework": {"goto": "CALCULATE", "max_rounds": 3}}``).

The tasks from that stage up to the deciding task's stage run again as the next round: each
finished execution is first kept as a ``TaskRound`` row (nothing is overwritten), then reset
(its execution number goes up, so a step's idempotency key changes). The decision (outcome,
comment, form data, who) is left in the ``rework`` variable for the recalculation to read.
"""

from __future__ import annotations

from processes import events
from processes.db import core
from processes.engine._run import _Run
from processes.models import TaskInstance, TaskRound, TaskState


def refusal(run: _Run, task: TaskInstance, decision) -> dict[str, list[str]]:
    """Errors by field when ``decision`` would loop once more than the spec allows."""
    loop = run.task_spec(task).rework_for(decision)
    if loop is None or task.round < loop.max_rounds:
        return {}
    return {
        "decision": [
            f"{decision!r} is not possible any more: this is round {task.round} of at most "
            f"{loop.max_rounds}"
        ]
    }


def send_back(run: _Run, task: TaskInstance, decision, result: dict) -> bool:
    """After ``task`` was completed with ``decision``: if it is a rework outcome, keep every
    execution the loop runs again, reset them for the next round and move the process back.
    The caller's ``_advance`` then schedules the goto stage. Returns whether it looped."""
    loop = run.task_spec(task).rework_for(decision)
    if loop is None:
        return False
    process = run.process
    goto_index = run.spec.stage_index(loop.goto)
    new_round = task.round + 1
    again = sorted(
        (t for t in run.tasks.values() if goto_index <= t.stage_index <= task.stage_index),
        key=lambda t: (t.stage_index, t.pk),
    )
    core.create_rows([_kept(t) for t in again if t.state != TaskState.PENDING])
    rework = {
        "round": new_round,
        "task": task.name,
        "outcome": decision,
        "comment": result.get("comment", ""),
        "decided_by": result.get("decided_by", ""),
        "data": {k: v for k, v in result.items() if k not in ("decision", "comment", "decided_by")},
    }
    process.variables = {**process.variables, "rework": rework}
    events.process_sent_back(log=run.log, actor=run.actor, task=task, goto=loop.goto, rework=rework)
    reason = f"rework round {new_round}: {task.name} {decision}"
    for other in again:
        if other.state != TaskState.PENDING:
            other.reset()
            events.task_reset(log=run.log, actor=run.actor, task=other, reason=reason)
        other.round = new_round
        run.touch(other)
    process.current_stage = loop.goto
    events.stage_started(log=run.log, actor=run.actor, stage=loop.goto)
    return True


def _kept(task: TaskInstance) -> TaskRound:
    return TaskRound(
        process_id=task.process_id,
        task=task,
        task_name=task.name,
        round=task.round,
        execution=task.execution,
        state=task.state,
        result=task.result,
        decided_by_id=task.decided_by_id,
        attempts=task.attempts,
        scheduled_at=task.scheduled_at,
        started_at=task.started_at,
        finished_at=task.finished_at,
    )
