"""Fixtures of the admin tests: step handlers that fail on demand, a compensation recorder, a
controllable clock, the dashboard's data set, and a logged-in browser."""

import datetime as dt
from unittest import mock

import pytest

from processes import steps, worker
from processes.steps import PermanentStepError
from tests.admin.helpers import start, task
from tests.factories import UserFactory, complete_task, definition_data


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
def work_handler(clock):
    """A step that takes ``variables.work`` minutes of (fake) time, or fails if asked to."""

    def work(ctx):
        if ctx.variables.get("fail"):
            raise PermanentStepError("asked to fail")
        clock.advance(minutes=ctx.variables["work"])
        return {"done": True}

    steps.registry.register("test_admin.work", work)
    yield
    steps.registry.unregister("test_admin.work")


@pytest.fixture
def data_set(import_definition, clock, work_handler):
    import_definition(
        definition_data(
            "dash",
            stages=[
                (
                    "MAIN",
                    [
                        {"task_name": "auto", "handler": "test_admin.work"},
                        {
                            "task_name": "approve",
                            "task_type": "HUMAN",
                            "assigned_to": "managers",
                            "parent_task": ["auto"],
                            "due": "PT1H",
                        },
                    ],
                )
            ],
        )
    )
    day = clock.now

    def at(h, m=0):
        clock.set(day + dt.timedelta(hours=h, minutes=m))

    def run(process):
        worker.run_step(task(process, "auto").pk)

    def decide(process):
        complete_task(task(process, "approve"), {})

    at(9)
    p1 = start("dash", "P1", {"work": 3})
    at(9, 10)
    run(p1)  # 09:10 -> 09:13
    at(11, 43)
    decide(p1)
    at(14)
    p2 = start("dash", "P2", {"work": 5})
    at(14, 1)
    run(p2)  # 14:01 -> 14:06
    at(14, 36)
    decide(p2)
    at(20)
    p3 = start("dash", "P3", {"work": 1, "fail": True})
    at(20, 30)
    run(p3)  # fails for good: an incident
    at(21)
    p4 = start("dash", "P4", {"work": 5})
    run(p4)  # 21:00 -> 21:05, then approval waits past its due time
    return {"p1": p1, "p2": p2, "p3": p3, "p4": p4, "now": day + dt.timedelta(days=2)}


@pytest.fixture
def superuser(db):
    return UserFactory(username="boss", is_staff=True, is_superuser=True)


def admin_login(page, base_url, username="boss", password="pw"):
    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")
