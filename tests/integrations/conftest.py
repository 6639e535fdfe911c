"""Fixtures of the integrations tests: the salary definition with short timers, simulators."""

import json

import pytest

from processes import engine
from processes.events import Actor
from tests.conftest import DEFINITIONS


def salary_test_definition(backoff="PT1S", max_attempts=3, key="salary-test") -> dict:
    """The reference salary definition with short back-offs and timeouts (for tests)."""
    data = json.loads((DEFINITIONS / "salary.json").read_text())
    data["key"] = key
    data["component_name"] = "SALARY_TEST"
    for stage in data["stages"]:
        for task in stage["tasks"]:
            if "retry" in task:
                task["retry"] = {
                    "max_attempts": max_attempts,
                    "backoff": backoff,
                    "backoff_factor": 1,
                }
            if "timeout" in task:
                task["timeout"] = "PT10S"
    return data


def start_salary(employee_id, period="2026-11"):
    """Start the test salary process for one employee and period (the business key)."""
    return engine.process_start(
        definition_key="salary-test",
        business_key=f"{employee_id}-{period}",
        input={"employee_id": employee_id, "period": period},
        actor=Actor.system("test"),
    ).process


@pytest.fixture
def salary_test(import_definition):
    return import_definition(salary_test_definition())


@pytest.fixture
def simulators_on(settings):
    """Mount the simulators on the test URLconf (config.urls reads the flag at import)."""
    settings.FLOWDESK_SIMULATORS = True
    settings.ROOT_URLCONF = "tests.integrations.urls"
    from django.urls import clear_url_caches

    clear_url_caches()
    yield
    clear_url_caches()


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
