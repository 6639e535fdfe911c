"""Dashboard figures equal those computed directly from the events of a known data set (the
``data_set`` fixture), read from the projection kept current by catching up."""

import datetime as dt
import statistics
from collections import defaultdict

import pytest
from django.urls import reverse

from processes import dashboard, projections, worker
from processes.models import EventType, ProcessEvent, ProjectionState, TaskExecution
from tests.admin.helpers import start, task
from tests.factories import complete_task

pytestmark = pytest.mark.django_db


def from_events():
    """Pair the events the plain way: last scheduled/started before each completion."""
    lead, run = defaultdict(list), defaultdict(list)
    last_scheduled, last_started = {}, {}
    for e in ProcessEvent.objects.filter(process__definition_key="dash").order_by(
        "process_id", "seq"
    ):
        if e.type == EventType.TASK_SCHEDULED:
            last_scheduled[e.task_id] = e.created_at
            last_started.pop(e.task_id, None)
        elif e.type == EventType.TASK_STARTED:
            last_started[e.task_id] = e.created_at
        elif e.type == EventType.TASK_COMPLETED:
            lead[e.task_name].append((e.created_at - last_scheduled[e.task_id]).total_seconds())
            if e.task_id in last_started:
                run[e.task_name].append((e.created_at - last_started[e.task_id]).total_seconds())
    return lead, run


def p95(values):
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def test_dashboard_figures_match_the_events(data_set):
    dash = dashboard.build("dash", days=7, now=data_set["now"])
    assert dash.behind == 0  # caught up just before, so every event is in the figures
    figures = {f.name: f for f in dash.tasks}
    lead, run = from_events()

    # the figures, as the events say them
    assert figures["auto"].completed == len(lead["auto"]) == 3
    assert figures["auto"].lead_p50 == statistics.median(lead["auto"])
    assert figures["auto"].lead_p95 == pytest.approx(p95(lead["auto"]))
    assert figures["auto"].run_p50 == statistics.median(run["auto"])
    assert figures["auto"].run_p95 == pytest.approx(p95(run["auto"]))
    assert figures["approve"].waiting_p50 == statistics.median(lead["approve"])
    assert figures["approve"].waiting_p95 == pytest.approx(p95(lead["approve"]))
    assert figures["approve"].waiting_total == sum(lead["approve"])
    assert figures["approve"].run_p50 is None  # nobody "starts" a human task

    # and as worked out by hand from the story above
    assert sorted(lead["auto"]) == [300, 360, 780]
    assert (figures["auto"].lead_p50, figures["auto"].lead_p95) == (360, pytest.approx(738))
    assert (figures["auto"].run_p50, figures["auto"].run_p95) == (300, 300)
    assert figures["approve"].waiting_p50 == 5400  # 150 min and 30 min
    assert figures["approve"].waiting_p95 == pytest.approx(8640)
    assert figures["approve"].waiting_total == 10800

    # heat map: seconds spent per hour of day
    hours = {f.name: f.hours for f in dash.tasks}
    assert {h: s for h, s in enumerate(hours["auto"]) if s} == {9: 780, 14: 360, 21: 300}
    assert {h: s for h, s in enumerate(hours["approve"]) if s} == {
        9: 47 * 60,
        10: 3600,
        11: 43 * 60,
        14: 30 * 60,
    }
    assert sum(hours["approve"]) == sum(lead["approve"])

    # instances by state, incidents, SLA breaches
    assert dash.by_state == {
        "running": 1,
        "failed": 1,
        "completed": 2,
        "cancelling": 0,
        "cancelled": 0,
        "compensated": 0,
    }
    assert [p.business_key for p in dash.incidents] == ["P3"] and dash.incident_count == 1
    assert [(t.process.business_key, t.name) for t in dash.breaches] == [("P4", "approve")]
    assert dash.breach_count == 1


FIELDS = ("completed", "lead_p50", "lead_p95", "run_p50", "run_p95", "waiting_total")


def assert_same_figures(got, expected):
    assert [f.name for f in got] == [f.name for f in expected]
    for a, b in zip(got, expected, strict=True):
        for field in FIELDS:
            assert getattr(a, field) == pytest.approx(getattr(b, field)), (a.name, field)
        assert a.hours == pytest.approx(b.hours), a.name


def test_python_and_postgres_aggregations_agree(data_set, postgres):
    since = data_set["now"] - dt.timedelta(days=7)
    projections.catch_up()
    in_sql = dashboard.task_figures("dash", since, in_database=True)
    assert_same_figures(dashboard.task_figures("dash", since, in_database=False), in_sql)
    # and over the rows the Python projection writes (SQLite's)
    TaskExecution.objects.all().delete()
    ProjectionState.objects.all().delete()
    projections.catch_up(in_database=False)
    for in_database in (True, False):
        assert_same_figures(dashboard.task_figures("dash", since, in_database=in_database), in_sql)


def test_projection_catches_up_with_new_events(data_set, clock):
    # given a dashboard drawn once (the projection is then current)
    now = data_set["now"]
    first = dashboard.build("dash", days=7, now=now)
    assert {f.name: f.completed for f in first.tasks} == {"auto": 3, "approve": 2}
    rows = TaskExecution.objects.count()
    assert rows == 5

    # when more work is done: P4's approval, and a new instance P5
    clock.set(now - dt.timedelta(hours=1))
    complete_task(task(data_set["p4"], "approve"), {})
    p5 = start("dash", "P5", {"work": 7})
    worker.run_step(task(p5, "auto").pk)

    # then the next dashboard includes it, with the figures the events give
    again = dashboard.build("dash", days=7, now=now)
    assert again.behind == 0
    assert {f.name: f.completed for f in again.tasks} == {"auto": 4, "approve": 3}
    lead, run = from_events()
    figures = {f.name: f for f in again.tasks}
    assert figures["auto"].lead_p50 == statistics.median(lead["auto"])
    assert figures["auto"].run_p95 == pytest.approx(p95(run["auto"]))
    assert figures["approve"].waiting_total == sum(lead["approve"])
    for f in again.tasks:  # the heat map holds every second of every execution, once
        assert sum(f.hours) == pytest.approx(sum(lead[f.name]))
    # and catching up again adds nothing (each completion is projected once)
    assert projections.catch_up()["added"] == 0
    assert TaskExecution.objects.count() == 7
    p5_row = TaskExecution.objects.get(process_id=p5.pk)
    assert (p5_row.task_name, p5_row.task_type, p5_row.definition_version) == ("auto", "SERVICE", 1)
    assert p5_row.run_seconds == 7 * 60


def test_far_behind_projection_shows_no_figures_until_caught_up(
    data_set, monkeypatch, admin_client, clock
):
    # given a projection that has read nothing, and a page that may not wait for it
    monkeypatch.setattr(dashboard, "CATCH_UP_SECONDS", 0)
    catch_up = projections.catch_up
    monkeypatch.setattr(projections, "catch_up", lambda **kw: catch_up(**{**kw, "batch": 4}))
    dash = dashboard.build("dash", days=7, now=data_set["now"])
    # then it shows no task figures rather than some of them, and says so
    assert dash.behind > 0 and dash.tasks == []
    clock.set(data_set["now"])
    page = admin_client.get(reverse("admin:processes_processinstance_dashboard"), {"key": "dash"})
    assert b'id="fd-behind"' in page.content and b"fd-heatmap" not in page.content
    # and once the schedule's catch-up, in small batches, got there, the figures are all there
    result = projections.catch_up(batch=4)
    assert result["left"] == 0 and result["passes"] > 1
    dash = dashboard.build("dash", days=7, now=data_set["now"])
    assert dash.behind == 0
    assert {f.name: f.completed for f in dash.tasks} == {"auto": 3, "approve": 2}
    state = ProjectionState.objects.get(name=projections.TASK_EXECUTIONS)
    assert state.last_event_id == ProcessEvent.objects.order_by("-id").first().id


def test_python_projection_writes_the_same_rows_as_sql(data_set, postgres):
    columns = [f.attname for f in TaskExecution._meta.fields]
    projections.catch_up(in_database=True)
    in_sql = list(TaskExecution.objects.order_by("event_id").values_list(*columns))
    TaskExecution.objects.all().delete()
    ProjectionState.objects.all().delete()
    projections.catch_up(in_database=False)
    in_python = list(TaskExecution.objects.order_by("event_id").values_list(*columns))
    assert in_python == in_sql and len(in_sql) == 5


def test_dashboard_page(data_set, admin_client, clock):
    clock.set(data_set["now"])
    response = admin_client.get(
        reverse("admin:processes_processinstance_dashboard"), {"key": "dash", "days": "7"}
    )
    assert response.status_code == 200
    page = response.content.decode()
    p3 = reverse("admin:processes_processinstance_change", args=[data_set["p3"].pk])
    p4 = reverse("admin:processes_processinstance_change", args=[data_set["p4"].pk])
    assert p3 in page and p4 in page
    assert "6.0 min" in page and "12.3 min" in page  # auto: lead p50 and p95 (738 s)
    assert "90.0 min" in page and "3.0 h" in page  # approve: waiting p50, total
    assert 'class="fd-heatmap"' in page and 'data-seconds="3600.000"' in page
    assert 'data-state="failed"' in page
    # bad parameters fall back, never a 500
    again = admin_client.get(
        reverse("admin:processes_processinstance_dashboard"), {"key": "nope", "days": "x"}
    )
    assert again.status_code == 200


def test_dashboard_without_definitions(admin_client):
    response = admin_client.get(reverse("admin:processes_processinstance_dashboard"))
    assert response.status_code == 200 and b"No process definition yet" in response.content


def test_percentile_and_hour_spreading():
    assert dashboard.percentile([], 50) is None
    assert dashboard.percentile([7], 95) == 7
    assert dashboard.percentile([1, 2, 3, 4], 50) == 2.5
    start = dt.datetime(2026, 1, 1, 23, 30, tzinfo=dt.UTC)
    spread = projections.spread_over_hours(start, start + dt.timedelta(days=1, hours=1))
    assert spread[23] == 3600 + 1800 and spread[0] == 3600 + 1800 and spread[5] == 3600
    assert sum(spread) == 25 * 3600


def test_the_dashboard_opens_on_the_configured_definition(
    admin_client, import_definition, settings
):
    from tests.factories import definition_data

    for key in ("apple", "salary", "zebra"):
        import_definition(definition_data(key))
    url = reverse("admin:processes_processinstance_dashboard")

    assert admin_client.get(url).context["key"] == "apple"  # the first key by name
    settings.FLOWDESK_DASHBOARD_KEY = "salary"
    assert admin_client.get(url).context["key"] == "salary"  # the demo's
    assert admin_client.get(url, {"key": "zebra"}).context["key"] == "zebra"
    settings.FLOWDESK_DASHBOARD_KEY = "gone"
    assert admin_client.get(url).context["key"] == "apple"
