"""The salary process end to end: a real qcluster subprocess on PostgreSQL, the simulators served
by a real gunicorn subprocess, approvals through the engine service, SMS in the file backend.

The test process enqueues into the cluster's queue (the ORM broker lives in the shared test
database) and plays the timer sweep itself, so retry back-offs of one second are honoured.
"""

import os
import signal
import subprocess
import sys

import httpx
import pytest

from integrations.models import AlertRecipient, SimulatorCall, SimulatorNotice, SimulatorPayout
from integrations.simulators import directory, faults
from integrations.sms.backends.file import read_messages
from processes import engine, history, worker
from processes.events import Actor
from processes.models import EventType, ProcessInstance, TaskState
from tests.conftest import ROOT, free_port, subprocess_env, wait_for
from tests.factories import UserFactory
from tests.integrations.conftest import salary_test_definition, start_salary

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def simulator_server(postgres, transactional_db, tmp_path):
    """The project served by gunicorn with FLOWDESK_SIMULATORS=1, on the test database."""
    port = free_port()
    log = open(tmp_path / "server.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}"]
        + ["--workers", "1", "--threads", "8", "--timeout", "60"],
        cwd=ROOT,
        env=subprocess_env(FLOWDESK_SIMULATORS=1),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def up():
        try:
            return httpx.get(f"{url}/simulators/", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, timeout=30, message=f"gunicorn at {url}")
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        log.close()


@pytest.fixture
def salary_cluster(simulator_server, qcluster_factory, import_definition, tmp_path, monkeypatch):
    from django_q.conf import Conf

    import_definition(salary_test_definition())
    sms_file = tmp_path / "sms.jsonl"
    cluster = qcluster_factory(
        broker="orm",
        FLOWDESK_SIMULATORS=1,
        FLOWDESK_ACCOUNTING_URL=f"{simulator_server}/simulators/accounting",
        FLOWDESK_BONUS_URL=f"{simulator_server}/simulators/bonus",
        FLOWDESK_BASE_URL=simulator_server,
        FLOWDESK_SMS_BACKEND="integrations.sms.backends.file.SmsBackend",
        FLOWDESK_SMS_FILE_PATH=str(sms_file),
        FLOWDESK_Q_WORKERS=3,
        FLOWDESK_Q_TIMEOUT=20,
        FLOWDESK_Q_RETRY=30,
    )
    # Steps enqueued by this process (start, approve, retry, sweep) go to that cluster's queue.
    monkeypatch.setattr(Conf, "PREFIX", cluster.env["FLOWDESK_Q_NAME"])
    monkeypatch.setattr(Conf, "CLUSTER_NAME", cluster.env["FLOWDESK_Q_NAME"])
    cluster.sms_file = sms_file
    cluster.server = simulator_server
    return cluster


@pytest.fixture
def people():
    admin = UserFactory(username="admin", is_staff=True, is_superuser=True)
    AlertRecipient.objects.create(user=admin, phone="+33612345678")
    return {
        "admin": admin,
        "alice": UserFactory(username="alice", roles=["managers"]),
        "bob": UserFactory(username="bob", roles=["managers"]),
    }


def reaches(process, cluster, predicate, what, timeout=60):
    def check():
        worker.sweep_timers()  # the one-minute schedule, sped up: retry back-offs are 1 s here
        process.refresh_from_db()
        return predicate(process)

    wait_for(check, timeout=timeout, interval=0.3, message=f"{what}\n{cluster.output()[-3000:]}")


def task(process, name):
    return process.tasks.get(name=name)


def waiting_for_approval(process):
    return process.tasks.filter(name="approve_bonus", state=TaskState.SCHEDULED).exists()


def calls(employee_process, endpoint):
    return list(
        SimulatorCall.objects.filter(
            endpoint=endpoint, idempotency_key__startswith=str(employee_process.pk)
        ).order_by("started_at")
    )


def test_salary_end_to_end_parallel_approve_and_reject(salary_cluster, people):
    # Both systems answer slowly, so a serial run would be visible.
    faults.set_faults("accounting", latency_ms=800)
    faults.set_faults("bonus", latency_ms=800)

    approved, rejected = start_salary("E001"), start_salary("E002")

    for process in (approved, rejected):
        reaches(process, salary_cluster, waiting_for_approval, "approval task")
    # the two calculations of one process overlapped (ran in parallel on two workers)
    (base,) = calls(approved, "salary-base")
    (bonus,) = calls(approved, "compute")
    assert base.started_at < bonus.finished_at and bonus.started_at < base.finished_at
    t_base, t_bonus = task(approved, "salary_base"), task(approved, "bonus")
    assert t_base.started_at < t_bonus.finished_at and t_bonus.started_at < t_base.finished_at
    # each approval sits in the inbox of the employee's own manager
    assert task(approved, "approve_bonus").assignee == people["alice"]
    assert task(rejected, "approve_bonus").assignee == people["bob"]
    assert task(approved, "approve_bonus").candidate_role == "managers"

    engine.task_decide(
        task_id=task(approved, "approve_bonus").pk,
        actor=Actor.for_user(people["alice"]),
        decision="approve",
        comment="well deserved",
    )
    engine.task_decide(
        task_id=task(rejected, "approve_bonus").pk,
        actor=Actor.for_user(people["bob"]),
        decision="reject",
        comment="targets missed",
    )
    for process in (approved, rejected):
        reaches(process, salary_cluster, lambda p: p.state == "completed", "completion")

    # approved: paid once, with the computed bonus
    assert approved.business_status == "PAID"
    payout = SimulatorPayout.objects.get(employee_id="E001")
    employee = directory.find("E001")
    assert payout.total == employee.salary_base + employee.bonus("2026-11")[0]
    assert len(calls(approved, "payouts")) == 1
    assert task(approved, "notify_rejection").state == TaskState.SKIPPED
    # rejected: the bonus system is told, nothing is paid
    assert rejected.business_status == "BONUS REJECTED"
    assert task(rejected, "record_payout").state == TaskState.SKIPPED
    assert not SimulatorPayout.objects.filter(employee_id="E002").exists()
    assert SimulatorNotice.objects.get().decided_by == "bob"

    # the full history, in order, and rebuildable from the events alone
    types = list(approved.events.order_by("seq").values_list("type", "task_name"))
    assert types[0] == (EventType.PROCESS_STARTED, "")
    assert types[-1] == (EventType.PROCESS_COMPLETED, "")
    for name in ("salary_base", "bonus", "record_payout"):
        assert (EventType.TASK_STARTED, name) in types and (EventType.TASK_COMPLETED, name) in types
    assert (EventType.TASK_SKIPPED, "notify_rejection") in types
    decided = approved.events.get(type=EventType.TASK_COMPLETED, task_name="approve_bonus")
    assert decided.actor_user == people["alice"]
    assert decided.data["result"]["decision"] == "approve"
    stages = [
        e.data["stage"]
        for e in approved.events.filter(type=EventType.STAGE_COMPLETED).order_by("seq")
    ]
    assert stages == ["CALCULATE", "APPROVE", "PAYOUT"]
    assert history.differences(approved) == [] and history.differences(rejected) == []
    assert read_messages(salary_cluster.sms_file) == []  # no incident, no SMS


def test_bonus_system_down_retries_incident_one_sms_then_repaired_and_retried(
    salary_cluster, people
):
    faults.set_faults("bonus", down=True)

    process = start_salary("E004")
    reaches(process, salary_cluster, lambda p: p.state == "failed", "the incident")

    bonus = task(process, "bonus")
    assert bonus.state == TaskState.FAILED and bonus.attempts == 3
    assert "answered 503: the bonus system is down" in bonus.last_error
    assert task(process, "salary_base").state == TaskState.COMPLETED  # the other branch went on
    failed_calls = calls(process, "compute")
    assert [c.status_code for c in failed_calls] == [503, 503, 503]
    assert len({c.idempotency_key for c in failed_calls}) == 1  # retries reuse the key
    assert process.events.filter(type=EventType.TASK_ATTEMPT_FAILED, task_name="bonus").count() == 2

    # exactly one SMS, to the admin, naming process, task, error and the link
    wait_for(lambda: read_messages(salary_cluster.sms_file), timeout=20, message="the SMS")
    (sms,) = read_messages(salary_cluster.sms_file)
    assert sms["to"] == "+33612345678"
    assert "salary-test E004-2026-11" in sms["body"] and "task bonus failed" in sms["body"]
    assert "the bonus system is down" in sms["body"]
    assert (
        f"{salary_cluster.server}/admin/processes/processinstance/{process.pk}/change/"
        in sms["body"]
    )

    # the system is repaired and an admin retries the task
    faults.set_faults("bonus", down=False)
    engine.task_retry(
        task_id=bonus.pk, actor=Actor.for_user(people["admin"]), reason="bonus system repaired"
    )
    reaches(process, salary_cluster, waiting_for_approval, "approval after the retry")
    engine.task_decide(
        task_id=task(process, "approve_bonus").pk,
        actor=Actor.for_user(people["bob"]),
        decision="approve",
    )
    reaches(process, salary_cluster, lambda p: p.state == "completed", "completion")

    assert process.business_status == "PAID"
    assert SimulatorPayout.objects.filter(employee_id="E004").count() == 1
    assert len(read_messages(salary_cluster.sms_file)) == 1  # still one SMS
    sent = process.events.get(type=EventType.NOTIFICATION_SENT)
    assert sent.task_name == "bonus" and sent.data["recipients"] == ["+33612345678"]
    assert sent.data["message"] == sms["body"]
    retried = process.events.get(type=EventType.TASK_RETRIED)
    assert (
        retried.actor_user == people["admin"] and retried.data["reason"] == "bonus system repaired"
    )
    order = list(process.events.order_by("seq").values_list("type", flat=True))
    assert (
        order.index(EventType.PROCESS_FAILED)
        < order.index(EventType.NOTIFICATION_SENT)
        < order.index(EventType.TASK_RETRIED)
        < order.index(EventType.PROCESS_RESUMED)
        < order.index(EventType.PROCESS_COMPLETED)
    )
    assert history.differences(process) == []
    assert ProcessInstance.objects.get(pk=process.pk).state == "completed"
