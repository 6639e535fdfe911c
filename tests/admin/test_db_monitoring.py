"""Each fixed SQL query of the projection and the dashboard (``processes/db/``) against its Python
or ORM twin, on a small data set (PostgreSQL)."""

import datetime as dt
import random

import pytest
from django.db.models import Max
from django.utils import timezone

from processes import dashboard, projections
from processes.db import dashboard as db_dashboard
from processes.db import projections as db_projections
from processes.models import ProcessEvent, TaskExecution

pytestmark = pytest.mark.django_db

ZONES = ["UTC", "Europe/Paris", "Asia/Kolkata", "America/St_Johns", "Australia/Lord_Howe"]


def spans(n=400, seed=12):
    """Executions of every length from 0 s to 3 days, many across the 2026 DST changes."""
    rng = random.Random(seed)
    starts = [
        dt.datetime(2026, 3, 29, 0, 0, tzinfo=dt.UTC),  # Europe springs forward at 01:00 UTC
        dt.datetime(2026, 10, 25, 0, 0, tzinfo=dt.UTC),  # and falls back at 01:00 UTC
        dt.datetime(2026, 4, 4, 14, 0, tzinfo=dt.UTC),  # Lord Howe: back 30 minutes at 15:00 UTC
        dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.UTC),
    ]
    out = []
    for _ in range(n):
        start = rng.choice(starts) + dt.timedelta(seconds=rng.randint(-7200, 7200))
        length = rng.choice([0, 1, 59.5, 1800, 3600, 3601, 7200, 86400, 90000, 260000])
        out.append((start, start + dt.timedelta(seconds=length * rng.random())))
    out.append((starts[0], starts[0]))
    return out


@pytest.mark.parametrize("zone", ZONES)
def test_heat_pieces_in_sql_and_python_agree(postgres, zone):
    given = spans()
    with timezone.override(zone):
        in_python = [tuple(projections.heat_pieces(start, end)) for start, end in given]
        in_sql = db_projections.heat_pieces(given, tz=zone)
    for span, a, b in zip(given, in_sql, in_python, strict=True):
        assert a[:2] == b[:2] and a[3] == b[3] and a[5:] == b[5:], (zone, span, a, b)
        assert a[2] == pytest.approx(b[2]) and a[4] == pytest.approx(b[4]), (zone, span, a, b)
        if zone != "Australia/Lord_Howe":  # (its clocks change by half an hour: see below)
            # every second of the span is in the heat map, once
            seconds = (span[1] - span[0]).total_seconds()
            heat = projections.add_heat([0.0] * 24, projections.Heat(*b))
            assert sum(heat) == pytest.approx(seconds), (zone, span, b)


def test_heat_pieces_count_whole_hours_across_a_half_hour_clock_change(postgres):
    # Known limit of the rule (both encodings): the whole hours between the first and the last
    # are rounded, so an execution across Lord Howe's 30-minute change counts 30 minutes more or
    # less. No other time zone changes its clocks by less than an hour.
    start = dt.datetime(2026, 4, 4, 14, 10, tzinfo=dt.UTC)
    end = start + dt.timedelta(hours=3)
    with timezone.override("Australia/Lord_Howe"):
        heat = projections.heat_pieces(start, end)
        assert db_projections.heat_pieces([(start, end)], tz="Australia/Lord_Howe") == [heat]
    assert sum(projections.add_heat([0.0] * 24, heat)) - 3 * 3600 == 1800


def test_project_range_and_ids_write_the_rows_of_the_python_twin(data_set, postgres):
    columns = [f.attname for f in TaskExecution._meta.fields]
    high = ProcessEvent.objects.aggregate(m=Max("id"))["m"]
    ids = list(ProcessEvent.objects.order_by("id").values_list("id", flat=True))
    tz = timezone.get_current_timezone_name()

    def rows():
        got = list(TaskExecution.objects.order_by("event_id").values_list(*columns))
        TaskExecution.objects.all().delete()
        return got

    middle = ids[len(ids) // 2]
    db_projections.project_range(low=0, high=middle, tz=tz)
    db_projections.project_ids([i for i in ids if i > middle], tz=tz)
    in_sql = rows()
    projections._project_in_python(low=0, high=high)
    assert rows() == in_sql and len(in_sql) == 5


def test_missing_ids_are_the_gaps_the_orm_sees(data_set, postgres):
    ids = list(ProcessEvent.objects.order_by("id").values_list("id", flat=True))
    low, high = ids[0] - 3, ids[-1] + 2
    expected = sorted(set(range(low + 1, high + 1)) - set(ids))
    assert db_projections.missing_ids(low=low, high=high, limit=1000) == expected
    assert db_projections.missing_ids(low=low, high=high, limit=2) == expected[-2:]  # newest


def test_high_and_snapshot(data_set, postgres):
    high, xmin, xmax = db_projections.high_and_snapshot()
    assert high == ProcessEvent.objects.aggregate(m=Max("id"))["m"]
    assert 0 < xmin <= xmax


def test_task_aggregates_equal_the_python_twin(data_set, postgres):
    projections.catch_up()
    since = data_set["now"] - dt.timedelta(days=7)
    stats, hours = dashboard.aggregate_in_database("dash", since)
    expected_stats, expected_hours = dashboard.aggregate_in_python("dash", since)
    assert stats.keys() == expected_stats.keys() == {"auto", "approve"}
    for name, row in stats.items():
        assert row == pytest.approx(expected_stats[name]), name
        assert hours[name] == pytest.approx(expected_hours[name]), name
    # nothing for a window in the future, or another key
    assert db_dashboard.task_aggregates(key="dash", since=data_set["now"]) == []
    assert db_dashboard.task_aggregates(key="nope", since=since) == []


def test_names_come_from_the_models():
    sql = db_projections.names("SELECT {x.event_id} FROM {x}", x=TaskExecution)
    assert sql == 'SELECT "event_id" FROM "processes_taskexecution"'
