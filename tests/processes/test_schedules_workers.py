"""Scheduled starts on real clusters: two `manage.py workers` hosts on one PostgreSQL database,
a definition whose hourly schedule was missed for hours (nothing ran): each missed occurrence
starts exactly once when the workers come back, and a SIGKILL of the host running the timer
loop starts nothing twice after the other takes over."""

import datetime as dt
import os
import signal
import time

import pytest
from django.utils import timezone

from processes.engine import schedules
from processes.models import ProcessDefinition, ProcessInstance, ScheduledStart
from processes.supervisor import lease_holder
from tests.conftest import wait_for
from tests.factories import definition_data

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


def test_missed_occurrences_start_once_across_two_hosts_and_a_kill(
    postgres, supervisor, import_definition
):
    # Given an hourly schedule (catch up "all") published 3½ hours ago while nothing ran.
    definition = import_definition(
        definition_data(
            "hourly",
            schedule=[
                {"cron": "0 * * * *", "business_key": "H-{date:%Y-%m-%d-%H}", "catch_up": "all"}
            ],
            stages=[("MAIN", [{"task_name": "check", "task_type": "HUMAN", "assigned_to": "ops"}])],
        )
    )
    published = timezone.now() - dt.timedelta(hours=3, minutes=30)
    ProcessDefinition.objects.filter(pk=definition.pk).update(published_at=published)
    expected = len(schedules.occurrences("0 * * * *", published, timezone.now(), 100))
    assert expected >= 3

    # When two hosts' workers start on the same database (a 2 s timer lease, fast ticks).
    env = {"FLOWDESK_TIMER_LEASE": "2", "FLOWDESK_TIMER_TICK": "0.5"}
    first, second = supervisor("orm", **env), supervisor("orm", **env)
    first.wait_beating()
    second.wait_beating()

    # Then every missed occurrence starts, once.
    wait_for(
        lambda: ProcessInstance.objects.filter(definition_key="hourly").count() >= expected,
        timeout=60,
        message=f"{expected} scheduled starts\n{first.output()[-2000:]}",
    )
    time.sleep(3)  # more sweeps on both hosts: nothing more
    keys = list(
        ProcessInstance.objects.filter(definition_key="hourly").values_list(
            "business_key", flat=True
        )
    )
    assert len(keys) == len(set(keys)) == expected
    rows = ScheduledStart.objects.filter(definition_key="hourly")
    assert rows.count() == expected and set(rows.values_list("outcome", flat=True)) == {"started"}

    # And when the host running the timer loop dies whole, the other takes the loop over and
    # starts nothing again.
    wait_for(lambda: lease_holder() is not None, timeout=30, message="a lease holder")
    leader, other = (
        (first, second) if lease_holder().startswith(first.supervisor_id) else (second, first)
    )
    leader.tree()
    os.killpg(leader.proc.pid, signal.SIGKILL)
    for group in leader.groups:
        os.killpg(group, signal.SIGKILL)
    leader.proc.wait(timeout=10)
    wait_for(
        lambda: (lease_holder() or "").startswith(other.supervisor_id + "/"),
        timeout=30,
        message=f"the takeover\n{other.output()[-2000:]}",
    )
    time.sleep(2)
    assert ProcessInstance.objects.filter(definition_key="hourly").count() == expected
    assert ScheduledStart.objects.filter(definition_key="hourly").count() == expected
