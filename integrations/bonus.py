"""Client of the bonus system: bonus computation and rejection notices."""

from __future__ import annotations

from integrations.http import (
    CURRENCY_RE,
    EMPLOYEE_ID_RE,
    ServiceClient,
    field_amount,
    field_str,
    require_object,
)


class BonusClient(ServiceClient):
    system = "bonus"
    url_setting = "FLOWDESK_BONUS_URL"
    token_setting = "FLOWDESK_BONUS_TOKEN"

    def compute(self, *, employee_id: str, period: str, idempotency_key: str) -> dict:
        """The bonus the bonus system computes for the employee and period."""

        def fields(body: dict) -> dict:
            result = {
                "amount": field_amount(body, "amount"),
                "currency": field_str(body, "currency", CURRENCY_RE),
            }
            if body.get("rating") is not None:
                result["rating"] = field_str(body, "rating", max_len=50)
            return result

        return self.post_for_employee(
            "compute",
            employee_id=employee_id,
            period=period,
            idempotency_key=idempotency_key,
            fields=fields,
        )

    def notify_rejection(
        self, *, employee_id: str, period: str, decided_by: str, comment: str, idempotency_key: str
    ) -> dict:
        """Tell the bonus system the bonus was rejected, so it is not paid."""

        def validate(body) -> dict:
            body = require_object(body)
            return {"notice_id": field_str(body, "notice_id", EMPLOYEE_ID_RE, max_len=32)}

        return self.call(
            "POST",
            "rejections",
            json={
                "employee_id": employee_id,
                "period": period,
                "decided_by": decided_by,
                "comment": comment,
            },
            idempotency_key=idempotency_key,
            validate=validate,
        )
