"""A fleet of worker supervisors (issue 30): each row's lifetime, ``/healthz`` healthy while one
live supervisor serves each queue, a vanished host reported ``gone`` then forgotten, the watchdog
naming the host; one timer loop across hosts (the timer lease), taken over when its host dies.

Unit tests first (rows written by hand, the lease on the test database), then two real
``manage.py workers`` on one PostgreSQL database, one SIGKILLed whole.
"""

import datetime as dt
import io
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from integrations.models import AlertRecipient
from integrations.sms.backends import locmem
from processes import engine, health
from processes.events import Actor
from processes.models import ClusterHeartbeat, EventType, ProcessEvent, TimerLease
from processes.supervisor import hold_lease, lease_holder, release_lease
from tests.conftest import ROOT, subprocess_env, wait_for
from tests.factories import UserFactory, definition_data


@pytest.fixture
def fleet(settings):
    settings.FLOWDESK_STALL_SECONDS, settings.FLOWDESK_HEARTBEAT_SECONDS = 20, 5
    settings.FLOWDESK_SUPERVISOR_EXPIRY = 600
    settings.FLOWDESK_HEALTH_TIMER_LAG = 300

    def row(supervisor, *, cluster="flowdesk", silent=1.0, state="ok"):
        at = timezone.now() - dt.timedelta(seconds=silent)
        return ClusterHeartbeat.objects.create(
            supervisor=supervisor, cluster=cluster, state=state, returned_at=at, checked_at=at
        )

    return row


def healthz():
    response = Client().get("/healthz")
    return response.status_code, response.json()


@pytest.mark.django_db
def test_a_vanished_host_is_gone_and_the_fleet_healthy_while_another_serves_its_queue(fleet):
    # Given two supervisors of one queue, host-b silent for a minute (it vanished).
    fleet("host-a")
    fleet("host-b", silent=60)

    status, body = healthz()

    # Then /healthz is healthy (host-a serves the queue) and counts host-b as gone.
    assert status == 200 and body["reasons"] == []
    assert body["workers"]["states"] == ["gone", "ok"] and body["workers"]["supervisors"] == 2
    assert "host-" not in str(body)


@pytest.mark.django_db
def test_a_queue_nobody_serves_is_unhealthy_until_its_gone_host_expires(fleet):
    # Given queue "reports" served only by host-b, which vanished; "flowdesk" served by host-a.
    fleet("host-a")
    fleet("host-b", cluster="reports", silent=60)

    status, body = healthz()
    assert status == 503
    (reason,) = body["reasons"]  # (measured when /healthz answers: a slow machine adds a second)
    assert re.fullmatch(r"a worker supervisor is gone \(silent for 6[01]s\)", reason)

    # When host-b has been silent for longer than FLOWDESK_SUPERVISOR_EXPIRY.
    ClusterHeartbeat.objects.filter(pk="host-b").update(
        checked_at=timezone.now() - dt.timedelta(seconds=601)
    )

    # Then /healthz forgets it: the fleet that lost a host for good is healthy again.
    status, body = healthz()
    assert status == 200 and body["workers"]["supervisors"] == 1


@pytest.mark.django_db
def test_a_stalled_supervisor_beside_a_serving_one_is_healthy(fleet):
    fleet("host-a")
    fleet("host-b", state="stalled", silent=1)
    ClusterHeartbeat.objects.filter(pk="host-b").update(
        returned_at=timezone.now() - dt.timedelta(seconds=40)
    )
    status, body = healthz()
    assert status == 200 and body["workers"]["states"] == ["ok", "stalled"]


@pytest.mark.django_db
def test_the_watchdog_reasons_and_sms_name_the_host_and_queue(fleet, settings):
    settings.FLOWDESK_SMS_BACKEND = "integrations.sms.backends.locmem.SmsBackend"
    locmem.outbox.clear()
    AlertRecipient.objects.create(user=UserFactory(is_staff=True), phone="+33612345678")
    fleet("worker-7.example.com", cluster="reports", silent=60)
    fleet("worker-8.example.com", cluster="mail", state="stalled")
    ClusterHeartbeat.objects.filter(pk="worker-8.example.com").update(
        stalled_since=timezone.now() - dt.timedelta(seconds=30)
    )

    reasons, _ = health.check(hosts=True)
    reasons = [
        re.sub(r"for (\d+)s", lambda m: f"for {5 * (int(m.group(1)) // 5)}s", r) for r in reasons
    ]
    assert reasons == [
        "workers stalled for 30s on worker supervisor worker-8.example.com (queue mail) "
        "(the supervisor is restarting them)",
        "worker supervisor worker-7.example.com (queue reports) is gone (silent for 60s)",
    ]
    with pytest.raises(SystemExit):  # unhealthy: exit status 1
        call_command("watchdog", grace=0, stdout=io.StringIO())
    (sms,) = locmem.outbox
    assert "worker-7.example.com (queue reports) is gone" in sms.body
    assert "worker-8.example.com" in sms.body


@pytest.fixture
def own_supervisor(settings):
    """A ``Supervisor`` object of this process (not run): its row-keeping methods alone."""
    import shutil

    from processes.supervisor import Config, Supervisor

    made = []

    def make(supervisor_id, **overrides):
        config = Config.from_settings(supervisor_id=supervisor_id, **overrides)
        made.append(Supervisor(config))
        return made[-1]

    yield make
    for sup in made:
        shutil.rmtree(sup.progress_dir, ignore_errors=True)


@pytest.mark.django_db
def test_a_starting_supervisor_forgets_expired_rows_and_a_clean_stop_deregisters(
    fleet, own_supervisor
):
    fleet("host-old", silent=601)  # silent for longer than FLOWDESK_SUPERVISOR_EXPIRY
    fleet("host-b", silent=60)  # gone, not expired yet
    sup = own_supervisor("host-new")

    sup._register()
    assert set(ClusterHeartbeat.objects.values_list("pk", flat=True)) == {"host-b", "host-new"}

    sup._deregister()  # what SIGTERM ends with
    assert set(ClusterHeartbeat.objects.values_list("pk", flat=True)) == {"host-b"}


@pytest.mark.django_db
def test_a_peer_gone_gets_the_scheduled_steps_enqueued_again_once(fleet, own_supervisor):
    from django_q.conf import Conf

    sup = own_supervisor("host-a", timers=False, stall=20, heartbeat=5)
    recovered = []
    sup._recover = lambda: recovered.append(True)
    fleet("host-a", cluster=Conf.CLUSTER_NAME)
    fleet("host-b", cluster=Conf.CLUSTER_NAME, silent=10)  # late, not gone
    fleet("host-c", cluster="another queue", silent=60)  # gone, but not ours

    sup._check_peers()
    assert recovered == []

    ClusterHeartbeat.objects.filter(pk="host-b").update(
        checked_at=timezone.now() - dt.timedelta(seconds=30)
    )
    sup._check_peers()
    sup._check_peers()  # the same silence: nothing new
    assert recovered == [True]


# --- the timer lease --------------------------------------------------------------------------


@pytest.mark.django_db
def test_one_holder_at_a_time_and_an_expired_lease_is_taken_over(postgres):
    assert hold_lease("host-a/1", 5) is True
    assert hold_lease("host-a/1", 5) is True  # renewed
    assert hold_lease("host-b/2", 5) is False
    assert lease_holder() == "host-a/1"

    # host-a dies: its lease runs out (the database's clock), host-b takes it.
    TimerLease.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert lease_holder() is None
    assert hold_lease("host-b/2", 5) is True
    assert hold_lease("host-a/1", 5) is False  # back from a pause: no longer its own
    assert lease_holder() == "host-b/2"

    # A clean stop gives it back at once.
    release_lease("host-a/1")  # not its own: nothing happens
    assert lease_holder() == "host-b/2"
    release_lease("host-b/2")
    assert lease_holder() is None and hold_lease("host-a/1", 5) is True


# --- two real hosts on one PostgreSQL database ----------------------------------------------------


def _deadline_definition():
    """A process that waits for a person, with a deadline 6 s after its start."""
    human = {"task_name": "answer", "task_type": "HUMAN", "assigned_to": "clerks"}
    return definition_data(key="fleet", stages=[("WAIT", [human])], deadline="PT6S")


def _timer_lines(sup) -> int:
    return sup.output().count("timer loop running here")


@pytest.mark.e2e
@pytest.mark.postgres
def test_two_hosts_one_timer_loop_taken_over_when_its_host_is_killed(
    postgres, redis_url, supervisor, import_definition, settings
):
    settings.FLOWDESK_STALL_SECONDS, settings.FLOWDESK_HEARTBEAT_SECONDS = 6, 1
    # Given two supervisors of one queue (two hosts) on one database, a 2 s timer lease.
    env = {"FLOWDESK_TIMER_LEASE": "2", "FLOWDESK_TIMER_TICK": "0.5"}
    first = supervisor("redis", **env)
    wait_for(lambda: lease_holder() is not None, timeout=60, message="a lease holder")
    second = supervisor("redis", **env)
    first.wait_beating()
    second.wait_beating()
    assert Client().get("/healthz").status_code == 200

    # Then only one of them runs the timer loop.
    leader, other = (
        (first, second) if lease_holder().startswith(first.supervisor_id) else (second, first)
    )
    time.sleep(3)  # several renewals: the other one never takes it while the leader lives
    assert lease_holder().startswith(leader.supervisor_id + "/")
    assert _timer_lines(leader) == 1 and _timer_lines(other) == 0, other.output()[-2000:]

    # When a process whose deadline is due in 6 s starts, and the leader's host dies whole.
    import_definition(_deadline_definition())
    process = engine.process_start(
        definition_key="fleet", business_key="F-1", actor=Actor.system("test")
    ).process
    assert process.deadline_at is not None
    leader.tree()
    os.killpg(leader.proc.pid, signal.SIGKILL)
    for group in leader.groups:
        os.killpg(group, signal.SIGKILL)
    leader.proc.wait(timeout=10)
    killed = time.monotonic()

    # Then the other host takes the timer loop over within a few seconds ...
    wait_for(
        lambda: (lease_holder() or "").startswith(other.supervisor_id + "/"),
        timeout=30,
        interval=0.1,
        message=f"the takeover\n{other.output()[-3000:]}",
    )
    print(f"timer loop taken over {time.monotonic() - killed:.1f}s after the SIGKILL")
    # The lease commits a moment before the new holder starts its loop and logs it.
    wait_for(
        lambda: _timer_lines(other) >= 1,
        timeout=10,
        interval=0.1,
        message=f"the loop started on the other host\n{other.output()[-3000:]}",
    )
    assert _timer_lines(other) == 1

    # ... the due deadline fires once ...
    def deadline_events():
        return ProcessEvent.objects.filter(
            process=process, type=EventType.PROCESS_DEADLINE_PASSED
        ).count()

    wait_for(lambda: deadline_events() >= 1, timeout=30, message="the deadline fired")
    time.sleep(2)
    assert deadline_events() == 1

    # ... and /healthz stays healthy (the other host serves the queue), the dead one "gone".
    def gone_reported():
        body = Client().get("/healthz").json()
        return "gone" in body["workers"]["states"]

    wait_for(gone_reported, timeout=30, message="the killed host reported gone")
    status, body = healthz()
    assert status == 200, body
    # ... and the survivor, running the timer loop now, enqueued what the dead host had taken
    wait_for(
        lambda: f"supervisor {leader.supervisor_id} of queue" in other.output(),
        timeout=30,
        message=f"the peer seen gone\n{other.output()[-3000:]}",
    )

    # When the other host stops cleanly, it deregisters and gives the lease back at once.
    other.stop()
    assert ClusterHeartbeat.objects.filter(pk=other.supervisor_id).first() is None
    assert lease_holder() is None


@pytest.mark.e2e
@pytest.mark.postgres
def test_two_timer_commands_run_one_loop_and_a_clean_stop_gives_the_lease_back(
    postgres, transactional_db, tmp_path
):
    # Given two `manage.py timers` (beside bare qclusters) on two hosts, a 30 s lease.
    procs = {}
    for name in ("t-1", "t-2"):
        log = open(tmp_path / f"{name}.log", "ab")  # noqa: SIM115 - closed below
        procs[name] = (
            subprocess.Popen(
                [sys.executable, "manage.py", "timers"],
                cwd=ROOT,
                env=subprocess_env(FLOWDESK_SUPERVISOR_ID=name, FLOWDESK_TIMER_LEASE="30"),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            ),
            log,
        )
    try:
        wait_for(lambda: lease_holder() is not None, timeout=60, message="a lease holder")
        holder = lease_holder().split("/")[0]
        other = "t-2" if holder == "t-1" else "t-1"
        # (the other has started and found the lease taken: under load it may start seconds late)
        wait_for(
            lambda: "another host runs the timer loop" in (tmp_path / f"{other}.log").read_text(),
            timeout=60,
            message="the other timers command waiting for the lease",
        )

        # When the holder stops cleanly (SIGTERM).
        proc = procs[holder][0]
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)

        # Then the lease is free at once (not after its 30 s) and the other takes it.
        assert proc.returncode == 0
        assert (lease_holder() or "").split("/")[0] in ("", other)
        wait_for(
            lambda: (lease_holder() or "").startswith(other + "/"),
            timeout=20,
            message="the other timers command holds the lease",
        )
        # (the lease commits a moment before the new holder starts its loop and logs it)
        wait_for(
            lambda: "timer loop running here" in (tmp_path / f"{other}.log").read_text(),
            timeout=10,
            message="the other timers command running the loop",
        )
        said = {name: (tmp_path / f"{name}.log").read_text() for name in procs}
        assert said[holder].count("timer loop running here") == 1
        assert said[other].count("timer loop running here") == 1
        assert "another host runs the timer loop" in said[other]
        assert "timer loop stopped" in said[holder]
    finally:
        for proc, log in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            log.close()
