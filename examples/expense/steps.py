"""The expense claim's step: ask the HR system who approves the claim.

In the demo the HR system is the accounting simulator (its salary-base answer names the
employee's manager); your own system gets its own setting and client.
"""

import httpx
from django.conf import settings

from processes.steps import PermanentStepError, RetryableStepError, StepContext, step


# --8<-- [start:handler]
@step("expense.find_approver")
def find_approver(ctx: StepContext) -> dict:
    """Ask the HR system for the claimant's manager; the dict lands in the process variables
    under the task's name (``find_approver.manager``), checked against the task's ``result``."""
    # The definition's input declares both, required and typed: a claim without them, or with
    # a date that isn't one, was refused before it started.
    employee_id, spent_on = ctx.variables["employee_id"], ctx.variables["spent_on"]
    url = settings.FLOWDESK_ACCOUNTING_URL.rstrip("/") + "/salary-base"
    try:
        response = httpx.post(
            url,
            json={"employee_id": employee_id, "period": spent_on[:7]},
            headers={"Idempotency-Key": ctx.idempotency_key},  # the same on every retry
            timeout=10,
        )
    except httpx.HTTPError as exc:  # timeout, refused connection: try again later
        raise RetryableStepError(f"HR system unreachable: {exc}") from None
    if response.status_code == 429 or response.status_code >= 500:
        raise RetryableStepError(f"HR system answered {response.status_code}")
    if response.status_code >= 400:  # the HR system says no: retrying won't help
        raise PermanentStepError(f"HR system refused: {response.text[:200]}")
    body = response.json()
    if not isinstance(body, dict) or not body.get("manager"):
        raise PermanentStepError("HR system named no manager")
    return {"manager": body["manager"], "employee_name": body.get("employee_name", "")}


# --8<-- [end:handler]
