"""Step handlers of the salary process, wired to the accounting and bonus clients.

Each returns a validated dict that lands in the process variables under the task's name, and
passes ``ctx.idempotency_key`` to the remote system so a retried call has its effect once.
"""

from __future__ import annotations

from decimal import Decimal

from integrations.accounting import AccountingClient
from integrations.bonus import BonusClient
from integrations.http import EMPLOYEE_ID_RE, PERIOD_RE
from processes.steps import PermanentStepError, StepContext, step

INPUT_HINT = 'start the process with input {"employee_id": "E001", "period": "2026-11"}'


def employee_and_period(ctx: StepContext) -> tuple[str, str]:
    """The process input, checked: a bad input fails the task at once with a clear message."""
    employee_id = ctx.variables.get("employee_id")
    period = ctx.variables.get("period")
    if not isinstance(employee_id, str) or not EMPLOYEE_ID_RE.match(employee_id):
        raise PermanentStepError(f"input employee_id is missing or invalid ({INPUT_HINT})")
    if not isinstance(period, str) or not PERIOD_RE.match(period):
        raise PermanentStepError(f"input period must be YYYY-MM ({INPUT_HINT})")
    return employee_id, period


def _result_of(ctx: StepContext, task: str, field: str):
    value = (ctx.variables.get(task) or {}).get(field)
    if value in (None, ""):
        raise PermanentStepError(f"variable {task}.{field} is missing: did {task} run?")
    return value


@step("accounting.salary_base")
def salary_base(ctx: StepContext) -> dict:
    """Ask the accounting system for the employee's salary base and manager."""
    employee_id, period = employee_and_period(ctx)
    return AccountingClient().salary_base(
        employee_id=employee_id, period=period, idempotency_key=ctx.idempotency_key
    )


@step("bonus.compute")
def bonus(ctx: StepContext) -> dict:
    """Ask the bonus system for the employee's bonus; after a manager sent it back for rework
    (the ``rework`` variable), with their comment, so the recalculation can take it into account."""
    employee_id, period = employee_and_period(ctx)
    rework = ctx.variables.get("rework")
    review = None
    if isinstance(rework, dict):
        review = {
            "round": rework.get("round"),
            "comment": str(rework.get("comment") or ""),
            "decided_by": str(rework.get("decided_by") or ""),
        }
    return BonusClient().compute(
        employee_id=employee_id,
        period=period,
        idempotency_key=ctx.idempotency_key,
        review=review,
    )


@step("accounting.record_payout")
def record_payout(ctx: StepContext) -> dict:
    """Record the approved amount (the manager's adjusted bonus if any) in the accounting system."""
    employee_id, period = employee_and_period(ctx)
    base = _result_of(ctx, "salary_base", "amount")
    approval = ctx.variables.get("approve_bonus") or {}
    adjusted = approval.get("adjusted_amount")
    bonus_amount = adjusted if adjusted not in (None, "") else _result_of(ctx, "bonus", "amount")
    bonus_amount = str(Decimal(str(bonus_amount)).quantize(Decimal("0.01")))
    return AccountingClient().record_payout(
        employee_id=employee_id,
        period=period,
        salary_base=base,
        bonus=bonus_amount,
        reference=f"flowdesk:{ctx.process_id}",
        idempotency_key=ctx.idempotency_key,
    )


@step("notify.rejection")
def notify_rejection(ctx: StepContext) -> dict:
    """Tell the bonus system that the manager rejected the bonus."""
    employee_id, period = employee_and_period(ctx)
    approval = ctx.variables.get("approve_bonus") or {}
    notice = BonusClient().notify_rejection(
        employee_id=employee_id,
        period=period,
        decided_by=str(approval.get("decided_by") or ""),
        comment=str(approval.get("comment") or ""),
        idempotency_key=ctx.idempotency_key,
    )
    return {**notice, "decided_by": approval.get("decided_by", "")}
