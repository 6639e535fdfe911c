"""The accounting and bonus clients against a real HTTP server on 127.0.0.1 (pytest-httpserver)."""

import json
import time

import pytest
from werkzeug import Response

from integrations.accounting import AccountingClient
from integrations.bonus import BonusClient
from processes.steps import PermanentStepError, RetryableStepError
from tests.conftest import free_port

SALARY = {
    "employee_id": "E001",
    "employee_name": "Mira Ashdown",
    "team": "Sales",
    "manager": "alice",
    "period": "2026-11",
    "amount": "4200.5",
    "currency": "EUR",
}


def accounting(httpserver, **kwargs):
    return AccountingClient(httpserver.url_for("/acc"), token="s3cret", **kwargs)


def salary_base(client, key="p:salary_base:1"):
    return client.salary_base(employee_id="E001", period="2026-11", idempotency_key=key)


def test_salary_base_sends_key_and_credentials_and_validates_the_answer(httpserver):
    httpserver.expect_oneshot_request(
        "/acc/salary-base",
        method="POST",
        json={"employee_id": "E001", "period": "2026-11"},
        headers={"Idempotency-Key": "p:salary_base:1", "Authorization": "Bearer s3cret"},
    ).respond_with_json({**SALARY, "extra": "ignored"})

    result = salary_base(accounting(httpserver))

    httpserver.check_assertions()
    # normalised; unknown fields dropped; the optional employee login empty when not sent
    assert result == {**SALARY, "amount": "4200.50", "employee_username": ""}


def test_salary_base_passes_the_employees_own_login_on(httpserver):
    httpserver.expect_oneshot_request("/acc/salary-base").respond_with_json(
        {**SALARY, "employee_username": "e001"}
    )
    assert salary_base(accounting(httpserver))["employee_username"] == "e001"
    httpserver.expect_oneshot_request("/acc/salary-base").respond_with_json(
        {**SALARY, "employee_username": "not a login!"}
    )
    with pytest.raises(PermanentStepError, match="employee_username"):
        salary_base(accounting(httpserver))


def test_timeout_is_retryable(httpserver):
    def slow(request):
        time.sleep(1.0)
        return Response(json.dumps(SALARY), content_type="application/json")

    httpserver.expect_request("/acc/salary-base").respond_with_handler(slow)

    with pytest.raises(RetryableStepError, match="timed out"):
        salary_base(accounting(httpserver, read_timeout=0.2))


def test_connection_refused_is_retryable():
    client = AccountingClient(f"http://127.0.0.1:{free_port()}/acc")

    with pytest.raises(RetryableStepError, match="unreachable"):
        salary_base(client)


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_5xx_and_429_are_retryable_with_the_remote_message(httpserver, status):
    httpserver.expect_request("/acc/salary-base").respond_with_json(
        {"error": "maintenance window"}, status=status
    )

    with pytest.raises(RetryableStepError, match=f"answered {status}: maintenance window"):
        salary_base(accounting(httpserver))


def test_5xx_then_success_with_the_same_idempotency_key(httpserver):
    """The engine retries with the same key: the second call succeeds."""
    httpserver.expect_ordered_request("/acc/salary-base").respond_with_data("oops", status=503)
    httpserver.expect_ordered_request("/acc/salary-base").respond_with_json(SALARY)
    client = accounting(httpserver)

    with pytest.raises(RetryableStepError):
        salary_base(client, key="p:salary_base:1")
    result = salary_base(client, key="p:salary_base:1")

    assert result["amount"] == "4200.50"
    keys = [req.headers["Idempotency-Key"] for req, _ in httpserver.log]
    assert keys == ["p:salary_base:1", "p:salary_base:1"]


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (404, {"error": "unknown employee 'E999'"}, "refused the request (404): unknown employee"),
        (400, {"detail": "period must be YYYY-MM"}, "(400): period must be YYYY-MM"),
        (422, "plain text reason", "(422): plain text reason"),
    ],
)
def test_4xx_fails_at_once_with_the_remote_message(httpserver, status, body, message):
    if isinstance(body, dict):
        httpserver.expect_request("/acc/salary-base").respond_with_json(body, status=status)
    else:
        httpserver.expect_request("/acc/salary-base").respond_with_data(body, status=status)

    with pytest.raises(PermanentStepError, match=message.replace("(", r"\(").replace(")", r"\)")):
        salary_base(accounting(httpserver))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("<html>gateway</html>", "malformed response: not JSON"),
        ([1, 2], "expected a JSON object, got list"),
        ({**SALARY, "amount": "lots"}, "amount: must be a decimal amount"),
        ({**SALARY, "amount": -5}, "amount: must be an amount from 0"),
        ({**SALARY, "employee_id": "E002"}, "employee_id: expected 'E001'"),
        (
            {k: v for k, v in SALARY.items() if k != "manager"},
            "manager: must be a non-empty string",
        ),
        ({**SALARY, "manager": "bob; drop table"}, "manager: invalid value"),
        ({**SALARY, "currency": "euro"}, "currency: invalid value"),
    ],
)
def test_malformed_body_fails_and_never_reaches_the_variables(httpserver, body, message):
    if isinstance(body, str):
        httpserver.expect_request("/acc/salary-base").respond_with_data(body)
    else:
        httpserver.expect_request("/acc/salary-base").respond_with_json(body)

    with pytest.raises(PermanentStepError, match=message):
        salary_base(accounting(httpserver))


def test_a_bad_base_url_is_a_clear_final_error():
    with pytest.raises(PermanentStepError, match="FLOWDESK_ACCOUNTING_URL is not an http"):
        salary_base(AccountingClient("ftp://example/acc"))


def test_bonus_client_and_payout_client(httpserver):
    httpserver.expect_request("/bonus/compute", method="POST").respond_with_json(
        {"employee_id": "E001", "period": "2026-11", "amount": 315, "currency": "EUR"}
    )
    httpserver.expect_request("/acc/payouts", method="POST").respond_with_json(
        {
            "payout_id": "P000001",
            "employee_id": "E001",
            "salary_base": "4200.00",
            "bonus": "315.00",
            "total": "4515.00",
        },
        status=201,
    )

    bonus = BonusClient(httpserver.url_for("/bonus")).compute(
        employee_id="E001", period="2026-11", idempotency_key="k1"
    )
    payout = accounting(httpserver).record_payout(
        employee_id="E001",
        period="2026-11",
        salary_base="4200.00",
        bonus="315.00",
        reference="r",
        idempotency_key="k2",
    )

    assert bonus == {
        "employee_id": "E001",
        "period": "2026-11",
        "amount": "315.00",
        "currency": "EUR",
    }
    assert payout["payout_id"] == "P000001" and payout["total"] == "4515.00"


def test_clients_read_settings_when_created(settings):
    settings.FLOWDESK_BONUS_URL = "http://127.0.0.1:1/elsewhere/"
    settings.FLOWDESK_BONUS_TOKEN = "t"
    client = BonusClient()
    assert client.base_url == "http://127.0.0.1:1/elsewhere" and client.token == "t"
