"""Fixtures of the admin tests: step handlers that fail on demand, a compensation recorder, a
controllable clock, and a logged-in browser."""

import datetime as dt
from unittest import mock

import pytest

from processes import steps
from processes.steps import PermanentStepError
from tests.factories import UserFactory, definition_data


class Flaky:
    """A step handler that fails (permanently) while ``failing`` is true."""

    def __init__(self):
        self.failing = True
        self.calls = 0

    def __call__(self, ctx):
        self.calls += 1
        if self.failing:
            raise PermanentStepError("accounting system said no")
        return {"charged": 42}


@pytest.fixture
def flaky():
    handler = Flaky()
    steps.registry.register("test_admin.flaky", handler)
    yield handler
    steps.registry.unregister("test_admin.flaky")


@pytest.fixture
def compensations():
    """Register compensation handlers that record the order they ran in."""
    ran = []

    def make(name):
        def handler(ctx):
            ran.append((name, ctx.task_name, ctx.idempotency_key))

        return handler

    for name in ("test_admin.refund", "test_admin.release"):
        steps.registry.register(name, make(name))
    yield ran
    for name in ("test_admin.refund", "test_admin.release"):
        steps.registry.unregister(name)


def shop_definition(key="shop"):
    """RESERVE (reserve -> charge, both compensable) then SHIP (an external task)."""
    return definition_data(
        key,
        stages=[
            (
                "PAY",
                [
                    {
                        "task_name": "reserve",
                        "handler": "flowdesk.noop",
                        "compensate": "test_admin.release",
                    },
                    {
                        "task_name": "charge",
                        "parent_task": ["reserve"],
                        "handler": "test_admin.flaky",
                        "retry": {"max_attempts": 1},
                        "compensate": "test_admin.refund",
                        "business_status": "PAID",
                    },
                ],
            ),
            (
                "SHIP",
                [
                    {"task_name": "ship", "task_type": "SERVICE", "task_queue": "ship_queue"},
                ],
            ),
        ],
    )


@pytest.fixture
def shop(import_definition, flaky, compensations):
    return import_definition(shop_definition())


class Clock:
    def __init__(self, start: dt.datetime):
        self.now = start

    def __call__(self):
        return self.now

    def set(self, when: dt.datetime):
        self.now = when

    def advance(self, **kwargs):
        self.now = self.now + dt.timedelta(**kwargs)


@pytest.fixture
def clock():
    """Patch ``timezone.now`` (as the engine and events call it) with a clock the test moves."""
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    c = Clock(today - dt.timedelta(days=3))
    with mock.patch("django.utils.timezone.now", c):
        yield c


@pytest.fixture
def superuser(db):
    return UserFactory(username="boss", is_staff=True, is_superuser=True)


def admin_login(page, base_url, username="boss", password="pw"):
    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")
