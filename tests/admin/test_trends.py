"""Trends per month and week against figures worked out by hand from a known story (``story``),
through the selector (PostgreSQL and its Python twin), the API (JSON and CSV) and the dashboard."""

import csv
import datetime as dt
import io

import pytest
from django.urls import reverse

from processes import engine, trends
from processes.events import Actor
from tests.admin.helpers import start, task
from tests.api.conftest import VIEW, client_for, grant
from tests.factories import UserFactory, complete_task, definition_data

pytestmark = pytest.mark.django_db

UTC = dt.UTC
NOW = dt.datetime(2026, 10, 20, 12, 0, tzinfo=UTC)


def at(clock, day: str, hh: int, mm: int = 0):
    clock.set(dt.datetime.fromisoformat(day).replace(hour=hh, minute=mm, tzinfo=UTC))


@pytest.fixture
def story(import_definition, clock, work_handler):
    """Five salary cases. ``auto`` (a service step) takes ``work`` minutes; then ``approve``
    (managers, due in 1 h) and ``review`` (finance, due in 2 h) wait for people.

    - C1 Wed 2 Sep 10:00: auto 4 min; approve 30 min (on time); review 3 h (late); ends 13:04.
    - C2 Sun 20 Sep 09:00: auto 2 min; review 1 h (on time); approve 3 h (late); ends 12:02.
    - C3 Fri 25 Sep 08:00: auto 1 min; cancelled Sat 3 Oct.
    - C4 Mon 5 Oct 12:00: auto 10 min; approve 30 min; review still open (due 14:10): late.
    - C5 Sat 10 Oct 12:00: auto 3 min; approve 20 min, review 40 min; ends 12:43.
    """
    import_definition(
        definition_data(
            "salary",
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
                        {
                            "task_name": "review",
                            "task_type": "HUMAN",
                            "assigned_to": "finance",
                            "parent_task": ["auto"],
                            "due": "PT2H",
                        },
                    ],
                )
            ],
        )
    )
    from processes import worker

    def begin(name, day, hh, work):
        at(clock, day, hh)
        process = start("salary", name, {"work": work})
        worker.run_step(task(process, "auto").pk)  # the clock moves on by ``work`` minutes
        return process

    def decide(process, name, day, hh, mm):
        at(clock, day, hh, mm)
        complete_task(task(process, name), {})

    c1 = begin("C1", "2026-09-02", 10, 4)
    decide(c1, "approve", "2026-09-02", 10, 34)
    decide(c1, "review", "2026-09-02", 13, 4)
    c2 = begin("C2", "2026-09-20", 9, 2)
    decide(c2, "review", "2026-09-20", 10, 2)
    decide(c2, "approve", "2026-09-20", 12, 2)
    c3 = begin("C3", "2026-09-25", 8, 1)
    at(clock, "2026-10-03", 8)
    engine.process_cancel(process_id=c3.pk, actor=Actor.system("test"))
    c4 = begin("C4", "2026-10-05", 12, 10)
    decide(c4, "approve", "2026-10-05", 12, 40)
    c5 = begin("C5", "2026-10-10", 12, 3)
    decide(c5, "approve", "2026-10-10", 12, 23)
    decide(c5, "review", "2026-10-10", 12, 43)
    clock.set(NOW)
    return {"c1": c1, "c2": c2, "c3": c3, "c4": c4, "c5": c5}


def query(by="month", **params):
    boss = UserFactory(username=f"boss-{by}", is_superuser=True, is_staff=True)
    return trends.parse_query(boss, {"definition": "salary", "by": by, **params})


def figures(p: trends.Period) -> dict:
    return {k: v for k, v in vars(p).items() if k != "start"}


def expect(**given) -> dict:
    return figures(trends.Period(dt.date(2000, 1, 1), **given))


# Worked out by hand from the story (percentiles interpolate between the closest ranks).
SEPTEMBER = expect(
    started=3,
    completed=2,
    lead_p50=10980.0,  # C2 3h02 = 10920 s, C1 3h04 = 11040 s
    lead_p95=10920 + 0.95 * 120,
    people_tasks=4,  # 1800, 3600, 10800, 10800
    people_p50=7200.0,
    people_p95=10800.0,
    people_total=27000.0,
    system_tasks=3,  # 60, 120, 240
    system_p50=120.0,
    system_p95=120 + 0.9 * 120,
    system_total=420.0,
    late_finished=2,
    late_by_role={"finance": [1, 0], "managers": [1, 0]},
)
OCTOBER = expect(
    started=2,
    completed=1,
    cancelled=1,  # C3, started in September
    lead_p50=2580.0,
    lead_p95=2580.0,
    people_tasks=3,  # 1200, 1800, 2400
    people_p50=1800.0,
    people_p95=1800 + 0.9 * 600,
    people_total=5400.0,
    system_tasks=2,  # 180, 600
    system_p50=390.0,
    system_p95=180 + 0.95 * 420,
    system_total=780.0,
    late_open=1,  # C4's review
    late_by_role={"finance": [0, 1]},
)


def assert_figures(got: trends.Period, expected: dict):
    for name, value in expected.items():
        if isinstance(value, float):
            assert getattr(got, name) == pytest.approx(value), name
        else:
            assert getattr(got, name) == value, name


@pytest.mark.parametrize("in_database", [True, False], ids=["postgresql", "python"])
def test_monthly_figures_match_the_hand_computed_story(story, in_database, request):
    if in_database:
        request.getfixturevalue("postgres")
    result = trends.build(query(**{"from": "2026-08-01", "to": "2026-10-31"}), now=NOW,
                          in_database=in_database)  # fmt: skip
    assert [p.start for p in result.periods] == [
        dt.date(2026, 8, 1),
        dt.date(2026, 9, 1),
        dt.date(2026, 10, 1),
    ]
    august, september, october = result.periods
    assert_figures(august, expect())  # listed, empty
    assert_figures(september, SEPTEMBER)
    assert_figures(october, OCTOBER)
    assert result.behind == 0 and result.roles == ["finance", "managers"]


def test_weekly_figures_match_the_hand_computed_story(story):
    result = trends.build(query("week", **{"from": "2026-09-01", "to": "2026-10-12"}), now=NOW)
    weeks = {p.start.isoformat(): p for p in result.periods}
    assert list(weeks) == [
        "2026-08-31",
        "2026-09-07",
        "2026-09-14",
        "2026-09-21",
        "2026-09-28",
        "2026-10-05",
        "2026-10-12",
    ]
    assert_figures(
        weeks["2026-08-31"],
        expect(
            started=1,
            completed=1,
            lead_p50=11040.0,
            lead_p95=11040.0,
            people_tasks=2,
            people_p50=6300.0,
            people_p95=1800 + 0.95 * 9000,
            people_total=12600.0,
            system_tasks=1,
            system_p50=240.0,
            system_p95=240.0,
            system_total=240.0,
            late_finished=1,
            late_by_role={"finance": [1, 0]},
        ),
    )
    assert_figures(weeks["2026-09-07"], expect())
    assert_figures(
        weeks["2026-09-14"],
        expect(
            started=1,
            completed=1,
            lead_p50=10920.0,
            lead_p95=10920.0,
            people_tasks=2,
            people_p50=7200.0,
            people_p95=3600 + 0.95 * 7200,
            people_total=14400.0,
            system_tasks=1,
            system_p50=120.0,
            system_p95=120.0,
            system_total=120.0,
            late_finished=1,
            late_by_role={"managers": [1, 0]},
        ),
    )
    assert_figures(
        weeks["2026-09-21"],
        expect(started=1, system_tasks=1, system_p50=60.0, system_p95=60.0, system_total=60.0),
    )
    assert_figures(weeks["2026-09-28"], expect(cancelled=1))
    october = {k: v for k, v in OCTOBER.items() if k != "cancelled"}
    assert_figures(weeks["2026-10-05"], {**october, "cancelled": 0})
    assert_figures(weeks["2026-10-12"], expect())


def test_periods_follow_the_local_calendar(story, settings):
    # C1 ended at 13:04 UTC: in Auckland (UTC+12 in September), already the next day, 3 Sep;
    # by week, C2 (Sun 20 Sep 12:02 UTC) ends on Monday 21 Sep there: the next week.
    settings.TIME_ZONE = "Pacific/Auckland"
    result = trends.build(query("week", **{"from": "2026-09-14", "to": "2026-09-21"}), now=NOW)
    week14, week21 = result.periods
    assert (week14.completed, week21.completed) == (0, 1)
    assert week14.started == 1  # C2 started 21:00 Sunday there


def test_closed_periods_are_stored_and_open_approvals_counted_afresh(story, clock):
    from processes.models import TrendPeriod

    # given the weeks computed once (those ended over an hour before now are stored)
    weekly = query("week", **{"from": "2026-10-05", "to": "2026-10-19"})
    first = trends.build(weekly, now=NOW)
    assert [p.late_open for p in first.periods] == [1, 0, 0]
    assert sorted(TrendPeriod.objects.values_list("start", flat=True)) == [
        dt.date(2026, 10, 5),
        dt.date(2026, 10, 12),
    ]  # not the week of 19 October: it is still going on
    # when C4's overdue review is finished now
    complete_task(task(story["c4"], "review"), {})
    again = trends.build(weekly, now=NOW)
    # then its week (stored) no longer counts it open, and this week counts it finished late
    week5, week12, week19 = again.periods
    assert (week5.late_open, week5.late_by_role) == (0, {})
    assert week5.people_tasks == 3 and week5.completed == 1  # the rest as stored
    assert (week19.late_finished, week19.completed, week19.late_by_role) == (
        1,
        1,
        {"finance": [1, 0]},
    )
    # and the stored figures are those computed: a fresh computation agrees
    TrendPeriod.objects.all().delete()
    fresh = trends.build(weekly, now=NOW)
    assert [figures(p) for p in fresh.periods] == [figures(p) for p in again.periods]


def test_default_range_is_the_last_twelve_periods(story):
    months = trends.build(query(), now=NOW).periods
    assert len(months) == 12 and months[-1].start == dt.date(2026, 10, 1)
    assert months[0].start == dt.date(2025, 11, 1)
    assert [m.started for m in months[-2:]] == [3, 2]


# --- the API ---------------------------------------------------------------------------------


URL = "/api/stats/trends/"


def test_api_answers_the_figures(story):
    boss = UserFactory(username="boss", is_superuser=True)
    response = client_for(boss).get(URL, {"definition": "salary", "from": "2026-09-01",
                                          "to": "2026-10-31"})  # fmt: skip
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["definition"], body["by"], body["from"], body["to"]) == (
        "salary",
        "month",
        "2026-09-01",
        "2026-10-31",
    )
    september, october = body["periods"]
    assert september["period"] == "2026-09-01"
    assert (september["started"], september["completed"], september["cancelled"]) == (3, 2, 0)
    assert september["lead_seconds"] == {"p50": 10980.0, "p95": pytest.approx(11034.0)}
    assert september["waiting_for_people"]["total_seconds"] == 27000.0
    assert september["waiting_for_systems"]["tasks"] == 3
    assert october["late_approvals"] == {
        "finished_late": 0,
        "open_past_due": 1,
        "by_role": {"finance": {"finished_late": 0, "open_past_due": 1}},
    }


@pytest.mark.parametrize(
    "params, name",
    [
        ({}, "definition"),
        ({"definition": "salary", "by": "day"}, "by"),
        ({"definition": "salary", "from": "2026-13-01"}, "from"),
        ({"definition": "salary", "to": "yesterday"}, "to"),
        ({"definition": "salary", "from": "2026-10-02", "to": "2026-10-01"}, "from"),
        ({"definition": "salary", "by": "week", "from": "2000-01-01"}, "from"),
        ({"definition": "salary", "format": "xml"}, "format"),
        ({"definition": "salary", "to": "9999-12-31"}, "to"),  # (no overflow: a 400)
        ({"definition": "salary", "by": "week", "from": "0001-01-01"}, "from"),
    ],
)
def test_api_names_the_bad_parameter(story, params, name):
    boss = UserFactory(username="boss", is_superuser=True)
    response = client_for(boss).get(URL, params)
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [name]


def test_api_is_404_without_view_rights(story):
    from processes.models import ProcessDefinition

    salary = ProcessDefinition.objects.get(key="salary")
    starter = UserFactory(username="starter")
    grant(starter, salary, "processes.start_process")
    viewer = UserFactory(username="viewer")
    grant(viewer, salary, VIEW)
    for user, status in ((starter, 404), (UserFactory(username="nobody"), 404), (viewer, 200)):
        response = client_for(user).get(URL, {"definition": "salary", "by": "week"})
        assert response.status_code == status, user
    # an unknown definition looks the same as a hidden one, even with bad other parameters
    boss = UserFactory(username="boss", is_superuser=True)
    assert client_for(boss).get(URL, {"definition": "nope"}).status_code == 404
    assert client_for(starter).get(URL, {"definition": "salary", "by": "x"}).status_code == 404
    assert client_for(None).get(URL, {"definition": "salary"}).status_code == 401


def test_csv_export_holds_the_same_figures(story):
    boss = UserFactory(username="boss", is_superuser=True)
    response = client_for(boss).get(URL, {"definition": "salary", "from": "2026-09-01",
                                          "to": "2026-10-31", "format": "csv"})  # fmt: skip
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "trends-salary-month.csv" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["period"] for r in rows] == ["2026-09-01", "2026-10-01"]
    september, october = rows
    assert september["started"] == "3" and september["completed"] == "2"
    assert float(september["lead_p50_s"]) == 10980.0
    assert float(september["people_wait_total_s"]) == 27000.0
    assert float(september["system_wait_p50_s"]) == 120.0
    assert september["late_finished:finance"] == "1" and september["late_open:finance"] == "0"
    assert september["late_finished:managers"] == "1"
    assert october["cancelled"] == "1" and october["late_open:finance"] == "1"
    assert october["late_open:managers"] == "0"


# --- the dashboard ---------------------------------------------------------------------------


def test_dashboard_shows_the_trends_table_and_csv_link(story, admin_client):
    response = admin_client.get(
        reverse("admin:processes_processinstance_dashboard"),
        {"key": "salary", "by": "month", "from": "2026-09-01", "to": "2026-10-31"},
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="fd-trends"' in page
    assert 'data-period="2026-09-01"' in page and 'data-period="2026-10-01"' in page
    assert "3.0 h" in page  # September's people p95 (10800 s)
    assert "/api/stats/trends/?definition=salary&amp;by=month" in page
    assert "<svg" in page and 'class="fd-trends-chart"' in page
    # a bad period falls back with a message, never a 500
    again = admin_client.get(
        reverse("admin:processes_processinstance_dashboard"), {"key": "salary", "from": "x"}
    )
    assert again.status_code == 200 and b"fd-trends" in again.content
