"""Client of the accounting system: salary bases and payouts."""

from __future__ import annotations

from integrations.http import (
    CURRENCY_RE,
    EMPLOYEE_ID_RE,
    USERNAME_RE,
    ServiceClient,
    expect_equal,
    field_amount,
    field_str,
    require_object,
)


class AccountingClient(ServiceClient):
    system = "accounting"
    url_setting = "FLOWDESK_ACCOUNTING_URL"
    token_setting = "FLOWDESK_ACCOUNTING_TOKEN"

    def salary_base(self, *, employee_id: str, period: str, idempotency_key: str) -> dict:
        """The employee's salary base for ``period`` and who their manager is."""
        return self.post_for_employee(
            "salary-base",
            employee_id=employee_id,
            period=period,
            idempotency_key=idempotency_key,
            fields=lambda body: {
                "employee_name": field_str(body, "employee_name"),
                "team": field_str(body, "team", max_len=100),
                "manager": field_str(body, "manager", USERNAME_RE, max_len=150),
                # optional: the employee's own login, so they can never approve their own bonus
                "employee_username": field_str(body, "employee_username", USERNAME_RE, max_len=150)
                if body.get("employee_username") is not None
                else "",
                "amount": field_amount(body, "amount"),
                "currency": field_str(body, "currency", CURRENCY_RE),
            },
        )

    def record_payout(
        self,
        *,
        employee_id: str,
        period: str,
        salary_base: str,
        bonus: str,
        reference: str,
        idempotency_key: str,
    ) -> dict:
        """Record the approved payout; the same key records it once however often it is sent."""

        def validate(body) -> dict:
            body = require_object(body)
            expect_equal(body, "employee_id", employee_id)
            return {
                "payout_id": field_str(body, "payout_id", EMPLOYEE_ID_RE, max_len=32),
                "employee_id": employee_id,
                "period": period,
                "salary_base": field_amount(body, "salary_base"),
                "bonus": field_amount(body, "bonus"),
                "total": field_amount(body, "total"),
            }

        return self.call(
            "POST",
            "payouts",
            json={
                "employee_id": employee_id,
                "period": period,
                "salary_base": salary_base,
                "bonus": bonus,
                "reference": reference,
            },
            idempotency_key=idempotency_key,
            validate=validate,
        )
