"""Two OS processes (two hosts' timer loops) run the schedules at once on one PostgreSQL
database: every occurrence starts exactly once."""

import datetime as dt
import json
import subprocess
import sys

import pytest

from processes.models import ProcessDefinition, ProcessInstance, ScheduledStart
from tests.conftest import ROOT, subprocess_env, wait_for
from tests.factories import definition_data

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

HOST = """
import json, pathlib, sys, time
import django
django.setup()
from processes.engine import schedules
barrier = pathlib.Path(sys.argv[1])
(barrier / sys.argv[2]).touch()
while not (barrier / "go").exists():
    time.sleep(0.01)
now = __import__("datetime").datetime.fromisoformat(sys.argv[3])
print(json.dumps(schedules.schedules_run(now=now)))
"""


def test_two_hosts_sweeping_at_once_start_each_occurrence_once(import_definition, tmp_path):
    # an hourly schedule, 24 hours behind: catch_up "all" starts 24 cases
    definition = import_definition(
        definition_data(
            "hourly",
            schedule=[{"cron": "0 * * * *", "business_key": "H-{date:%d-%H}", "catch_up": "all"}],
            stages=[("MAIN", [{"task_name": "wait", "task_queue": "q"}])],
        )
    )
    start = dt.datetime(2026, 3, 1, 0, 30, tzinfo=dt.UTC)
    ProcessDefinition.objects.filter(pk=definition.pk).update(published_at=start)
    now = start + dt.timedelta(hours=24)
    hosts = [
        subprocess.Popen(
            [sys.executable, "-c", HOST, str(tmp_path), f"host-{n}", now.isoformat()],
            cwd=ROOT,
            env=subprocess_env(FLOWDESK_TIME_ZONE="UTC"),
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in (1, 2)
    ]
    wait_for(lambda: all((tmp_path / f"host-{n}").exists() for n in (1, 2)), timeout=60)
    (tmp_path / "go").touch()
    outcomes = [json.loads(h.communicate(timeout=120)[0].strip().splitlines()[-1]) for h in hosts]
    assert [h.returncode for h in hosts] == [0, 0]

    assert sum(o.get("started", 0) for o in outcomes) == 24
    keys = sorted(ProcessInstance.objects.values_list("business_key", flat=True))
    assert len(keys) == len(set(keys)) == 24
    assert keys[0] == "H-01-01" and keys[-1] == "H-02-00"
    assert ScheduledStart.objects.filter(outcome="started").count() == 24
