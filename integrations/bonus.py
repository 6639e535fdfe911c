"""Client of the bonus system: bonus computation and rejection notices."""

from __future__ import annotations

from integrations.http import (
    CURRENCY_RE,
    EMPLOYEE_ID_RE,
    InvalidResponse,
    ServiceClient,
    field_amount,
    field_str,
    require_object,
)


class BonusClient(ServiceClient):
    system = "bonus"
    url_setting = "FLOWDESK_BONUS_URL"
    token_setting = "FLOWDESK_BONUS_TOKEN"

    def compute(
        self, *, employee_id: str, period: str, idempotency_key: str, review: dict | None = None
    ) -> dict:
        """The bonus the bonus system computes for the employee and period; ``review`` (round,
        comment, decided_by) when a manager sent the bonus back for rework."""

        def fields(body: dict) -> dict:
            result = {
                "amount": field_amount(body, "amount"),
                "currency": field_str(body, "currency", CURRENCY_RE),
            }
            if body.get("rating") is not None:
                result["rating"] = field_str(body, "rating", max_len=50)
            if body.get("rate") is not None:  # the percent of the salary base (optional)
                result["rate"] = field_amount(body, "rate")
            if review is not None:  # the bonus system says which review it took into account
                answered = require_object(body.get("review"))
                comment = answered.get("comment")
                if not isinstance(comment, str) or len(comment) > 2000:
                    raise InvalidResponse("review.comment: must be a string")
                result["review"] = {"round": answered.get("round"), "comment": comment}
            return result

        return self.post_for_employee(
            "compute",
            employee_id=employee_id,
            period=period,
            idempotency_key=idempotency_key,
            fields=fields,
            extra={"review": review} if review is not None else None,
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
