"""Scheduled starts: a definition's ``schedule`` starts a process at each cron moment in
FLOWDESK_TIME_ZONE, once (the business key per occurrence), from the timer sweep; occurrences
missed while nothing ran follow ``catch_up``."""

import datetime as dt
import zoneinfo

import pytest

from processes import selectors, worker
from processes.engine import schedules
from processes.models import ProcessDefinition, ProcessInstance, ScheduledStart
from processes.spec import parse
from tests.factories import definition_data

pytestmark = pytest.mark.django_db

PARIS = zoneinfo.ZoneInfo("Europe/Paris")


@pytest.fixture(autouse=True)
def paris(settings):
    settings.TIME_ZONE = "Europe/Paris"


def monthly(import_definition, catch_up="last", published=dt.datetime(2026, 1, 1, tzinfo=PARIS)):
    definition = import_definition(
        definition_data(
            "payroll",
            schedule=[
                {
                    "cron": "0 6 25 * *",
                    "business_key": "SAL-{date:%Y-%m}",
                    "input": {"source": "schedule"},
                    "catch_up": catch_up,
                }
            ],
            stages=[("MAIN", [{"task_name": "pay", "task_queue": "pay"}])],
        )
    )
    ProcessDefinition.objects.filter(pk=definition.pk).update(published_at=published)
    definition.refresh_from_db()
    return definition


def at(day, month=1, hour=6, minute=0, second=30):
    return dt.datetime(2026, month, day, hour, minute, second, tzinfo=PARIS)


def started():
    return sorted(ProcessInstance.objects.values_list("business_key", flat=True))


def test_each_due_moment_starts_once_in_the_configured_time_zone(import_definition):
    monthly(import_definition)
    # 05:59:59 in Paris (04:59:59 UTC): not yet
    assert schedules.schedules_run(now=at(25, hour=5, minute=59, second=59)) == {}
    assert started() == []

    # 06:00:30 Paris: one start, with the entry's input
    assert schedules.schedules_run(now=at(25)) == {"started": 1}
    (process,) = ProcessInstance.objects.all()
    assert process.business_key == "SAL-2026-01" and process.variables == {"source": "schedule"}
    row = ScheduledStart.objects.get()
    assert row.process == process and row.due_at == dt.datetime(2026, 1, 25, 5, 0, tzinfo=dt.UTC)

    # again, and again later that day: nothing more
    assert schedules.schedules_run(now=at(25)) == {}
    assert schedules.schedules_run(now=at(25, hour=23)) == {}
    assert started() == ["SAL-2026-01"]
    # the next month's moment starts the next one
    assert schedules.schedules_run(now=at(25, month=2, minute=1)) == {"started": 1}
    assert started() == ["SAL-2026-01", "SAL-2026-02"]


def test_another_host_seeing_the_same_moment_starts_nothing(import_definition):
    definition = monthly(import_definition)
    (due,) = schedules._due(definition, at(25))
    assert schedules._occur(due) == "started"
    # a second loop that computed the same occurrence before the first committed
    assert schedules._occur(due) == "already"
    assert started() == ["SAL-2026-01"]


@pytest.mark.parametrize(
    ("catch_up", "expected", "outcomes"),
    [
        ("last", ["SAL-2026-04"], {"started": 1}),
        ("all", ["SAL-2026-01", "SAL-2026-02", "SAL-2026-03", "SAL-2026-04"], {"started": 4}),
        ("none", [], {"skipped": 1}),
    ],
)
def test_moments_missed_while_nothing_ran_follow_catch_up(
    import_definition, catch_up, expected, outcomes
):
    monthly(import_definition, catch_up=catch_up)
    # nothing ran from January to 28 April
    assert schedules.schedules_run(now=at(28, month=4, hour=12)) == outcomes
    assert started() == expected
    assert schedules.schedules_run(now=at(28, month=4, hour=13)) == {}
    # back on time: May's moment starts whatever catch_up says
    assert schedules.schedules_run(now=at(25, month=5, minute=2)) == {"started": 1}
    assert started()[-1] == "SAL-2026-05"


def test_the_timer_sweep_runs_the_schedules(import_definition):
    monthly(import_definition, published=dt.datetime.now(dt.UTC) - dt.timedelta(days=40))
    assert worker.sweep_timers() == {"schedule started": 1}
    assert ProcessInstance.objects.filter(business_key__startswith="SAL-").count() == 1


def test_a_refused_start_is_recorded_once_not_retried(import_definition):
    definition = monthly(import_definition)
    data = dict(definition.spec)
    data["input"] = [{"name": "period", "type": "string", "required": True}]
    refused = import_definition({**data, "schedule": data["schedule"]})
    ProcessDefinition.objects.filter(pk=refused.pk).update(published_at=at(1))
    assert schedules.schedules_run(now=at(25)) == {"error": 1}
    row = ScheduledStart.objects.get()
    assert row.outcome == "error" and "period" in row.error and row.process is None
    assert schedules.schedules_run(now=at(26)) == {}


def test_next_runs_for_the_admin(import_definition):
    definition = monthly(import_definition)
    schedules.schedules_run(now=at(25))
    ((entry, moments, last),) = selectors.schedule_runs(definition, now=at(26))
    assert entry.cron == "0 6 25 * *"
    assert [m.strftime("%Y-%m-%d %H:%M") for m in moments] == [
        "2026-02-25 06:00",
        "2026-03-25 06:00",
        "2026-04-25 06:00",
    ]
    assert last.process.business_key == "SAL-2026-01"


@pytest.mark.parametrize(
    ("entry", "path"),
    [
        ({"cron": "0 6 25 *", "business_key": "S-{date:%Y}"}, "schedule[0].cron"),
        ({"cron": "61 6 25 * *", "business_key": "S-{date:%Y}"}, "schedule[0].cron"),
        ({"cron": "0 6 25 * *", "business_key": "SALARY"}, "schedule[0].business_key"),
        ({"cron": "0 6 25 * *", "business_key": "S-{when}"}, "schedule[0].business_key"),
        ({"cron": "0 6 25 * *"}, "schedule[0].business_key"),
        (
            {"cron": "0 6 25 * *", "business_key": "S-{date}", "catch_up": "x"},
            "schedule[0].catch_up",
        ),
        ({"cron": "0 6 25 * *", "business_key": "S-{date}", "input": []}, "schedule[0].input"),
    ],
)
def test_a_bad_schedule_is_refused_naming_the_field(entry, path):
    spec, errors = parse(definition_data("x", schedule=[entry]))
    assert spec is None
    assert path in [e.path for e in errors]


def test_the_shipped_salary_run_starts_itself_on_the_25th(import_definition):
    import_definition("salary.json")
    run = import_definition("salary_run.json")
    ProcessDefinition.objects.filter(pk=run.pk).update(published_at=at(1, month=3))
    assert schedules.schedules_run(now=at(25, month=3, minute=1)) == {"started": 1}
    process = ProcessInstance.objects.get(definition_key=run.key)
    assert process.business_key == "RUN-2026-03"
    assert process.variables["period"] == "2026-03"
    assert process.variables["employees"] == ["E001", "E002", "E003"]
