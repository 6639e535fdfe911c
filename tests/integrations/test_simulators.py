"""The simulators of the accounting and bonus systems: contract, faults, idempotency keys."""

import json
import time

import pytest
from django.core.management import CommandError, call_command

from integrations.accounting import AccountingClient
from integrations.bonus import BonusClient
from integrations.models import SimulatorCall, SimulatorNotice, SimulatorPayout
from integrations.simulators import directory, faults
from processes.steps import PermanentStepError, RetryableStepError

pytestmark = pytest.mark.django_db


def post(client, path, body, key=None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    raw = body if isinstance(body, str) else json.dumps(body)
    return client.post(f"/simulators/{path}", raw, content_type="application/json", **headers)


PAYOUT = {"employee_id": "E002", "period": "2026-11", "salary_base": "3274", "bonus": "100.5"}


def test_salary_base_names_the_employee_and_manager(client, simulators_on):
    response = post(client, "accounting/salary-base", {"employee_id": "E001", "period": "2026-11"})

    assert response.status_code == 200
    body = response.json()
    employee = directory.find("E001")
    assert body["manager"] == "alice" and body["team"] == "Sales"
    assert body["amount"] == str(employee.salary_base) and body["currency"] == "EUR"
    assert directory.find("E002").manager == "bob"  # the other team has the other manager


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        (
            "accounting/salary-base",
            {"employee_id": "X1", "period": "2026-11"},
            404,
            "unknown employee",
        ),
        ("accounting/salary-base", {"employee_id": "E001", "period": "11/2026"}, 400, "YYYY-MM"),
        ("accounting/salary-base", "{not json", 400, "not valid JSON"),
        ("accounting/salary-base", "[1]", 400, "must be a JSON object"),
        ("bonus/compute", {"employee_id": "E013", "period": "2026-11"}, 404, "no bonus plan"),
        ("accounting/payouts", {**PAYOUT, "bonus": "much"}, 400, "bonus must be a decimal"),
    ],
)
def test_bad_requests_get_a_clear_json_error(client, simulators_on, path, body, status, message):
    response = post(client, path, body)

    assert response.status_code == status
    assert message in response.json()["error"]


def test_a_payout_with_the_same_key_is_recorded_once(client, simulators_on):
    first = post(client, "accounting/payouts", PAYOUT, key="k-1")
    again = post(client, "accounting/payouts", PAYOUT, key="k-1")

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert first.json()["total"] == "3374.50"
    assert SimulatorPayout.objects.count() == 1


def test_a_key_reused_with_another_body_is_refused(client, simulators_on):
    post(client, "accounting/payouts", PAYOUT, key="k-1")

    response = post(client, "accounting/payouts", {**PAYOUT, "bonus": "999"}, key="k-1")

    assert response.status_code == 422 and "different request body" in response.json()["error"]


def test_a_second_payout_for_the_same_period_is_a_conflict(client, simulators_on):
    post(client, "accounting/payouts", PAYOUT, key="k-1")

    response = post(client, "accounting/payouts", PAYOUT, key="k-2")

    assert response.status_code == 409 and "already recorded" in response.json()["error"]
    assert SimulatorPayout.objects.count() == 1


def test_faults_down_errors_and_latency(client, simulators_on):
    body = {"employee_id": "E001", "period": "2026-11"}
    faults.set_faults("bonus", down=True)
    assert post(client, "bonus/compute", body).status_code == 503
    assert post(client, "accounting/salary-base", body).status_code == 200  # the other is fine

    faults.set_faults("bonus", down=False, error_rate=1.0)
    assert post(client, "bonus/compute", body).status_code == 500

    faults.set_faults("bonus", error_rate=0.0, latency_ms=150)
    started = time.monotonic()
    assert post(client, "bonus/compute", body).status_code == 200
    assert time.monotonic() - started >= 0.15


def test_a_failed_answer_is_not_stored_under_the_key(client, simulators_on):
    faults.set_faults("accounting", down=True)
    assert post(client, "accounting/payouts", PAYOUT, key="k-1").status_code == 503

    faults.set_faults("accounting", down=False)
    response = post(client, "accounting/payouts", PAYOUT, key="k-1")

    assert response.status_code == 201 and not response.has_header("Idempotent-Replayed")
    assert SimulatorPayout.objects.count() == 1


def test_every_call_is_logged_with_its_start_and_end(client, simulators_on):
    post(client, "bonus/compute", {"employee_id": "E001", "period": "2026-11"}, key="p:bonus:1")

    call = SimulatorCall.objects.get()
    assert (call.system, call.endpoint, call.idempotency_key) == ("bonus", "compute", "p:bonus:1")
    assert call.status_code == 200 and call.started_at <= call.finished_at


def test_simulators_are_off_unless_switched_on(client, simulators_on, settings):
    settings.FLOWDESK_SIMULATORS = False

    response = post(client, "bonus/compute", {"employee_id": "E001", "period": "2026-11"})

    assert response.status_code == 404


def test_credentials_are_checked_when_configured(client, simulators_on, settings):
    settings.FLOWDESK_BONUS_TOKEN = "s3cret"
    body = {"employee_id": "E001", "period": "2026-11"}

    assert post(client, "bonus/compute", body).status_code == 401
    ok = client.post(
        "/simulators/bonus/compute",
        json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION="Bearer s3cret",
    )
    assert ok.status_code == 200


def test_env_faults_are_parsed_and_rows_override_them(settings):
    settings.FLOWDESK_SIMULATOR_FAULTS = (
        "bonus:down, accounting:latency=50,bonus:error_rate=0.25,x:y"
    )
    assert faults.current("bonus") == faults.Faults(down=True, error_rate=0.25)
    assert faults.current("accounting") == faults.Faults(latency_ms=50)

    faults.set_faults("bonus", down=False)

    assert faults.current("bonus") == faults.Faults(down=False, error_rate=0.25)


def test_the_simulator_command_breaks_and_repairs_a_system(capsys):
    call_command("simulator", "bonus", "down")
    assert faults.current("bonus").down
    call_command("simulator", "bonus", "latency", "200")
    call_command("simulator", "bonus", "up")
    assert faults.current("bonus") == faults.Faults()
    call_command("simulator", "status")
    assert "bonus: Faults(down=False" in capsys.readouterr().out

    with pytest.raises(CommandError, match="needs a number"):
        call_command("simulator", "bonus", "latency", "fast")
    with pytest.raises(CommandError, match="between 0 and 1"):
        call_command("simulator", "bonus", "errors", "3")


# --- the clients against the simulators served by a real HTTP server ------------------------------


@pytest.fixture
def live_simulators(live_server, simulators_on, transactional_db):
    return f"{live_server.url}/simulators"


def test_clients_against_live_simulators_and_idempotent_payout(live_simulators):
    accounting = AccountingClient(f"{live_simulators}/accounting")
    bonus = BonusClient(f"{live_simulators}/bonus")

    base = accounting.salary_base(employee_id="E002", period="2026-11", idempotency_key="p:sb:1")
    computed = bonus.compute(employee_id="E002", period="2026-11", idempotency_key="p:b:1")
    payout_args = {
        "employee_id": "E002",
        "period": "2026-11",
        "salary_base": base["amount"],
        "bonus": computed["amount"],
        "reference": "test",
        "idempotency_key": "p:record_payout:1",
    }
    first = accounting.record_payout(**payout_args)
    again = accounting.record_payout(**payout_args)  # a retry after a lost answer

    assert base["manager"] == "bob"
    assert again == first
    assert SimulatorPayout.objects.filter(employee_id="E002").count() == 1
    notice = bonus.notify_rejection(
        employee_id="E002", period="2026-12", decided_by="bob", comment="no", idempotency_key="n1"
    )
    assert notice["notice_id"].startswith("N") and SimulatorNotice.objects.count() == 1


def test_clients_classify_simulated_faults(live_simulators):
    bonus = BonusClient(f"{live_simulators}/bonus")
    faults.set_faults("bonus", down=True)
    with pytest.raises(RetryableStepError, match="answered 503: the bonus system is down"):
        bonus.compute(employee_id="E001", period="2026-11", idempotency_key="k")

    faults.set_faults("bonus", down=False)
    with pytest.raises(PermanentStepError, match=r"\(404\): employee E013 has no bonus plan"):
        bonus.compute(employee_id="E013", period="2026-11", idempotency_key="k2")
