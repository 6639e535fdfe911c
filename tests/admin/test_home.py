"""The operations home at /admin/: what needs an operator now (incidents oldest first with
their age and repair, overdue tasks, passed deadlines, the cluster's health, dead letters), the
cases per definition with their dashboards, and the apps: processes first, "System" below."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from guardian.shortcuts import assign_perm

from processes import steps
from processes.models import ProcessDefinition, TaskInstance
from processes.steps import PermanentStepError
from tests.admin.helpers import run_ready_steps, start
from tests.factories import UserFactory, definition_data

pytestmark = pytest.mark.django_db


def failing(ctx):
    raise PermanentStepError("bonus system: no bonus plan")


@pytest.fixture
def payroll(import_definition):
    steps.registry.register("test_home.bonus", failing)
    import_definition(
        definition_data(
            "payroll",
            stages=[
                ("CALC", [{"task_name": "bonus", "handler": "test_home.bonus"}]),
                (
                    "REVIEW",
                    [{"task_name": "approve", "task_type": "HUMAN", "assigned_to": "managers",
                      "due": "P1D"}],
                ),
            ],
        )
    )  # fmt: skip
    import_definition(
        definition_data(
            "leave",
            stages=[
                (
                    "ASK",
                    [  # two people at once: each case waits for people once
                        {"task_name": "ok", "task_type": "HUMAN", "assigned_to": "hr"},
                        {"task_name": "sign", "task_type": "HUMAN", "assigned_to": "hr"},
                    ],
                )
            ],
        )
    )
    yield
    steps.registry.unregister("test_home.bonus")


def test_the_home_shows_what_needs_an_operator(admin_client, payroll):
    first = start("payroll", "E013-2026-11")
    run_ready_steps(first)
    second = start("payroll", "E014-2026-11")
    run_ready_steps(second)
    TaskInstance.objects.filter(process=first, name="bonus").update(
        finished_at=timezone.now() - dt.timedelta(hours=3)
    )
    start("leave", "L-1")
    start("leave", "L-2")
    page = admin_client.get(reverse("admin:index"))
    assert page.status_code == 200
    body = page.content.decode()
    # the incidents, oldest first, with their age and the way to their repair
    table = body[body.index('id="fd-home-incident-table"') :]
    assert table.index("E013-2026-11") < table.index("E014-2026-11")
    assert "3\xa0hours" in table
    assert f"/admin/processes/processinstance/{first.pk}/change/#fd-incident-bonus" in table
    cards = body[body.index('id="fd-home-cards"') : body.index('id="fd-home-incidents"')]
    assert 'id="fd-card-incidents"><div class="n"><a href="#fd-home-incidents">2</a>' in cards
    assert "healthy" in cards and "dead letters" in cards
    # the cases per definition, each with its dashboard
    rows = body[body.index('id="fd-home-definitions"') :]
    leave = rows[rows.index('data-key="leave"') :]
    assert ">2</a></td>" in leave[: leave.index("</tr>")]  # two running
    assert '<td class="num">2</td>' in leave[: leave.index("</tr>")]  # two cases wait for people
    assert "dashboard/?key=leave" in leave
    # processes first, the technical apps under one System group below
    assert body.index("Process instances") < body.index(">System<")
    for technical in ("Tokens", "Background work", "Access attempts"):
        if technical in body:
            assert body.index(">System<") < body.index(technical)


def test_the_cluster_health_and_its_reasons(admin_client, payroll):
    # no worker supervisor runs in the tests: /healthz would say so, and so does the home
    body = admin_client.get(reverse("admin:index")).content.decode()
    assert "no worker supervisor" in body and "unhealthy" in body


def test_an_operator_sees_only_the_definitions_granted(client, payroll):
    process = start("payroll", "E013-2026-11")
    run_ready_steps(process)
    start("leave", "L-1")
    person = UserFactory(username="ops", is_staff=True)
    assign_perm("processes.view_process", person, ProcessDefinition.objects.get(key="leave"))
    client.force_login(person)
    body = client.get(reverse("admin:index")).content.decode()
    assert 'data-key="leave"' in body and 'data-key="payroll"' not in body
    assert "E013-2026-11" not in body and "No open incident" in body
    assert "dead letters" not in body  # not theirs to see


def test_each_figure_is_one_query(admin_client, payroll):
    for i in range(3):
        run_ready_steps(start("payroll", f"E{i}-2026-11"))
    with CaptureQueriesContext(connection) as few:
        admin_client.get(reverse("admin:index"))
    for i in range(3, 9):
        run_ready_steps(start("payroll", f"E{i}-2026-11"))
        start("leave", f"L-{i}")
    with CaptureQueriesContext(connection) as more:
        admin_client.get(reverse("admin:index"))
    assert len(more.captured_queries) == len(few.captured_queries)
