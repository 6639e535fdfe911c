"""The worker supervisor (``manage.py workers``, issue #17): its pieces, then real supervisors.

Unit tests: the heartbeat's hook, the re-enqueue helper, the workers' progress notes, the
heartbeat lane of both brokers, the cluster SMS alerts and ``/healthz``. End to end (real
supervisor, qcluster, PostgreSQL, Redis, gunicorn): a stall is detected, alerted and repaired;
workers busy with long steps are not a stall; SIGTERM stops everything, also a hanging qcluster.
The chaos tests (30 SIGKILLs) are in ``test_supervisor_chaos.py``.
"""

import datetime as dt
import os
import re
import signal
import time

import httpx
import pytest
from django.test import Client
from django.utils import timezone
from django_q.models import OrmQ, Task
from django_q.signing import SignedPackage

import tests.e2e_steps  # noqa: F401  (registers e2e.work, so the definitions validate)
from integrations import alerts
from integrations.models import AlertRecipient, Incident, SmsMessage, SmsStatus
from integrations.sms.backends import locmem
from integrations.sms.backends.file import read_messages
from processes import engine, supervisor, worker
from processes.events import Actor
from processes.models import ClusterHeartbeat, EventType, ProcessEvent, ProcessInstance, TaskState
from processes.progress import Progress
from processes.steps import registry
from tests.conftest import record_steps, task_states, wait_for
from tests.factories import UserFactory, definition_data
from tests.integrations.test_salary_e2e import simulator_server  # noqa: F401  (a fixture)

# --- the pieces -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_heartbeat_hook_records_the_beat_and_drops_its_task_row():
    ClusterHeartbeat.objects.create(supervisor="host-a", cluster="flowdesk", returned_seq=5)
    beat = Task.objects.create(
        id="b1",
        name="heartbeat-7",
        func="processes.worker.heartbeat",
        args=("host-a", 7),
        started=timezone.now(),
        stopped=timezone.now(),
        success=True,
    )

    worker.heartbeat_returned(beat)

    row = ClusterHeartbeat.objects.get()
    assert row.returned_seq == 7 and row.returned_at is not None
    assert not Task.objects.filter(pk="b1").exists()  # the list of successes keeps real work
    # a late, older beat does not move it back
    worker.heartbeat_returned(Task(id="b0", args=("host-a", 6)))
    assert ClusterHeartbeat.objects.get().returned_seq == 7


@pytest.mark.django_db
def test_requeue_scheduled_enqueues_the_scheduled_service_steps_with_their_timeouts(
    import_definition, system_actor, monkeypatch
):
    import_definition(
        definition_data(
            key="rq",
            stages=[
                (
                    "A",
                    [
                        {"task_name": "fast", "handler": "flowdesk.noop", "timeout": "PT7S"},
                        {"task_name": "plain", "handler": "flowdesk.noop"},
                        {"task_name": "external", "task_type": "SERVICE"},
                        {"task_name": "ask", "task_type": "HUMAN", "assigned_to": "managers"},
                    ],
                )
            ],
        )
    )
    queued = []
    record_steps(monkeypatch, lambda task_id, timeout: queued.append(timeout))
    live = engine.process_start(definition_key="rq", business_key="L", actor=system_actor).process
    cancelled = engine.process_start(
        definition_key="rq", business_key="C", actor=system_actor
    ).process
    engine.process_cancel(process_id=cancelled.pk, actor=system_actor, reason="test")
    queued.clear()

    assert engine.requeue_scheduled() == 2
    assert sorted(queued) == [7, 60]  # the spec's timeout; FLOWDESK_DEFAULT_STEP_TIMEOUT

    # a step inside its retry back-off is left to the sweep
    live.tasks.filter(name="fast").update(scheduled_at=timezone.now() + dt.timedelta(minutes=1))
    queued.clear()
    assert engine.requeue_scheduled() == 1 and queued == [60]


def note(path):
    """(until, the first step's id) as the supervisor reads a progress note."""
    until, task_ids = supervisor.core._note(path)
    return until, (task_ids[0] if task_ids else 0)


@pytest.mark.django_db
def test_a_worker_notes_its_step_in_the_progress_directory(
    import_definition, system_actor, tmp_path, monkeypatch
):
    seen = []

    def look(ctx):
        seen.append(note(tmp_path / str(os.getpid())))
        return {}

    registry.register("t.look", look)
    try:
        import_definition(
            definition_data(
                key="pg", stages=[("A", [{"task_name": "x", "handler": "t.look", "timeout": 30}])]
            )
        )
        monkeypatch.setenv(worker.PROGRESS_DIR_ENV, str(tmp_path))
        monkeypatch.setattr(worker, "progress", Progress())
        process = engine.process_start(
            definition_key="pg", business_key="P", actor=system_actor
        ).process
        task = process.tasks.get()
        before = time.time()
        assert worker.run_step(task.pk) == "completed"
        assert worker.heartbeat("me", 1234) == 1234
    finally:
        registry.unregister("t.look")
    # while the step ran: busy until its timeout + lease margin, and which step; then idle
    (until, task_id) = seen[0]
    assert before + 30 < until < time.time() + 30 + 5 + 1 and task_id == task.pk
    assert note(tmp_path / str(os.getpid())) == (0.0, 0)
    assert int((tmp_path / "beat").read_bytes()) == 1234  # the beat ran on a worker


@pytest.mark.django_db
def test_the_supervisor_runs_again_a_step_whose_worker_died(
    import_definition, system_actor, tmp_path, monkeypatch
):
    import_definition(definition_data(key="dw"))
    process = engine.process_start(
        definition_key="dw", business_key="D", actor=system_actor
    ).process
    task = process.tasks.get()
    queued = []
    record_steps(monkeypatch, lambda task_id, timeout: queued.append(task_id))
    monkeypatch.setattr(supervisor.record, "close_old_connections", lambda: None)  # the atomic
    sup = supervisor.Supervisor(
        supervisor.Config.from_settings(progress_dir=str(tmp_path), cluster="c", command=["true"])
    )
    dead = tmp_path / "4194300"  # no such process
    dead.write_bytes(b"%20.3f %20d\n" % (time.time() + 5, task.pk))
    (tmp_path / "4194301").write_bytes(b"%20.3f %20d\n" % (0, 0))  # died idle: nothing to do

    sup._watch_workers(time.monotonic())

    assert queued == [task.pk]  # taken but never started: enqueued again now
    assert len(sup.sweeps) == 1  # and a sweep when its lease would expire
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_lane_names_fit_the_orm_queue_key():
    assert supervisor.lane_name("flowdesk", "web-1") == "flowdesk.beat.web-1"
    long = supervisor.lane_name("flowdesk", "x" * 300)
    assert len(long) <= 100 and long != supervisor.lane_name("flowdesk", "y" * 300)


@pytest.mark.django_db
def test_the_orm_pusher_takes_its_heartbeat_lane_first(monkeypatch):
    broker = supervisor.OrmBroker(list_key="lanetest")
    broker.enqueue(SignedPackage.dumps({"n": "work"}))
    supervisor.OrmBroker(list_key="lanetest.beat.me").enqueue(SignedPackage.dumps({"n": "beat"}))
    supervisor.OrmBroker(list_key="lanetest.beat.other").enqueue(SignedPackage.dumps({"n": "x"}))

    monkeypatch.setenv(supervisor.LANE_ENV, "lanetest.beat.me")
    first, second = broker.dequeue(), broker.dequeue()

    assert SignedPackage.loads(first[0][1]) == {"n": "beat"}
    assert SignedPackage.loads(second[0][1]) == {"n": "work"}
    assert OrmQ.objects.filter(key="lanetest.beat.other").count() == 1  # another's lane: untouched


def test_the_redis_pusher_takes_its_heartbeat_lane_first(redis_url, monkeypatch):
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "REDIS", redis_url)
    broker = supervisor.RedisBroker(list_key="lanetest")
    lane = supervisor.RedisBroker(list_key="lanetest.beat.me")
    broker.delete_queue()
    lane.delete_queue()
    broker.enqueue(b"work-1")
    broker.enqueue(b"work-2")
    lane.enqueue(b"beat")

    monkeypatch.delenv(supervisor.LANE_ENV, raising=False)
    assert broker.dequeue() == [(None, b"work-1")]  # unsupervised: the plain queue only
    monkeypatch.setenv(supervisor.LANE_ENV, "lanetest.beat.me")
    assert broker.dequeue() == [(None, b"beat")]
    assert broker.dequeue() == [(None, b"work-2")]
    broker.delete_queue()
    lane.delete_queue()


@pytest.fixture
def on_call(settings):
    settings.FLOWDESK_SMS_BACKEND = "integrations.sms.backends.locmem.SmsBackend"
    settings.FLOWDESK_BASE_URL = "https://flowdesk.example.com"
    locmem.outbox.clear()
    admin = UserFactory(username="oncall", is_staff=True)
    return AlertRecipient.objects.create(user=admin, phone="+33612345678")


@pytest.mark.django_db
def test_a_stall_sends_one_sms_and_its_end_another(on_call):
    since = timezone.now()
    events = ProcessEvent.objects.count()

    alerts.cluster_stalled(
        supervisor="host-a", cluster="flowdesk", since=since, silent_for=21.4, restarts=1
    )
    alerts.cluster_stalled(  # the same stall again: nothing more
        supervisor="host-a", cluster="flowdesk", since=since, silent_for=25, restarts=1
    )
    alerts.cluster_resumed(
        supervisor="host-a", cluster="flowdesk", since=since, stalled_for=27.2, restarts=1
    )

    stalled, resumed = locmem.outbox
    assert stalled.to == resumed.to == "+33612345678"
    assert stalled.body == (
        "[Flowdesk] Workers stalled: cluster flowdesk on host-a, no heartbeat for 21s; "
        "restarting it (restart 1). https://flowdesk.example.com/healthz"
    )
    assert resumed.body.startswith("[Flowdesk] Workers resumed: cluster flowdesk on host-a")
    assert "after 27s" in resumed.body
    assert Incident.objects.filter(process_id__isnull=True).count() == 2
    assert ProcessEvent.objects.count() == events  # no process, no history to write


@pytest.mark.django_db
def test_the_supervisor_announces_a_stall_and_its_end_and_the_on_call_admin_is_texted(
    on_call, tmp_path, monkeypatch
):
    from processes import hooks

    heard = []
    hooks.register("cluster_stalled", lambda **payload: heard.append(payload))
    sup = supervisor.Supervisor(
        supervisor.Config.from_settings(progress_dir=str(tmp_path), cluster="c", command=["true"])
    )
    try:
        sup._stalled(21.4)
        sup._resumed()
    finally:
        hooks._listeners["cluster_stalled"].pop()

    [stalled] = heard  # (what any listener gets)
    assert stalled["cluster"] == "c" and stalled["silent_for"] == 21.4
    assert stalled["supervisor"] == sup.config.supervisor_id and stalled["restarts"] == 1
    stalled_sms, resumed_sms = locmem.outbox  # integrations listen: the SMS
    assert stalled_sms.body.startswith("[Flowdesk] Workers stalled: cluster c on ")
    assert resumed_sms.body.startswith("[Flowdesk] Workers resumed: cluster c on ")


@pytest.mark.django_db
def test_cluster_alerts_honour_the_rate_limit(on_call, settings):
    settings.FLOWDESK_SMS_RATE_LIMIT = 3
    start = timezone.now()
    for i in range(3):
        since = start + dt.timedelta(seconds=i)
        alerts.cluster_stalled(
            supervisor="h", cluster="c", since=since, silent_for=20, restarts=i + 1
        )
        alerts.cluster_resumed(supervisor="h", cluster="c", since=since, stalled_for=25, restarts=1)

    assert len(locmem.outbox) == 3
    assert SmsMessage.objects.filter(status=SmsStatus.RATE_LIMITED).count() == 3


@pytest.fixture
def health(settings):
    settings.FLOWDESK_STALL_SECONDS = 20
    settings.FLOWDESK_HEARTBEAT_SECONDS = 5
    settings.FLOWDESK_HEALTH_TIMER_LAG = 300

    def get():
        response = Client().get("/healthz")
        return response.status_code, response.json()

    return get


def beat_row(supervisor="web-1.example.com", age=1.0, **fields):
    now = timezone.now()
    values = {
        "cluster": "flowdesk",
        "state": "ok",
        "returned_at": now - dt.timedelta(seconds=age),
        "checked_at": now,
        **fields,
    }
    return ClusterHeartbeat.objects.create(supervisor=supervisor, **values)


@pytest.mark.django_db
def test_healthz_is_200_when_the_heartbeat_is_fresh_and_says_no_secrets(health):
    beat_row(pid=4242, tree_pgid=4243)
    beat_row(supervisor="old-host", state="stopped", age=9999)  # stopped cleanly: not counted

    status, body = health()

    assert status == 200
    assert body["status"] == "ok" and body["reasons"] == [] and body["database"] == "ok"
    assert body["workers"]["supervisors"] == 1 and body["workers"]["states"] == ["ok"]
    text = str(body)
    assert "web-1" not in text and "4242" not in text and "old-host" not in text


@pytest.mark.django_db
@pytest.mark.parametrize(
    "row, reason",
    [
        (None, "no worker supervisor (manage.py workers) is running"),
        ({"age": 45}, "worker heartbeat is 45s old"),
        ({"age": 45, "state": "stalled"}, "workers stalled for 45s"),
        ({"age": 1, "checked_at_age": 60}, "a worker supervisor is gone (silent for 60s)"),
    ],
)
def test_healthz_is_503_with_the_reason(health, row, reason):
    if row is not None:
        checked = row.pop("checked_at_age", 0)
        beat_row(**row, checked_at=timezone.now() - dt.timedelta(seconds=checked))

    status, body = health()

    assert status == 503 and body["status"] == "unhealthy"
    # the age is measured when /healthz answers: a slow machine adds a second or two
    said = re.sub(r"\b(\d+)s\b", lambda m: f"{5 * (int(m.group(1)) // 5)}s", body["reasons"][0])
    assert body["reasons"] and said.startswith(reason)


@pytest.mark.django_db
def test_healthz_a_late_beat_behind_busy_workers_is_healthy(health):
    beat_row(age=45, state="busy")
    assert health()[0] == 200


@pytest.mark.django_db
def test_healthz_is_503_when_the_oldest_due_timer_is_late(health, import_definition, system_actor):
    beat_row()
    import_definition(definition_data(key="t"))
    process = engine.process_start(definition_key="t", business_key="T", actor=system_actor).process
    process.tasks.update(wake_at=timezone.now() - dt.timedelta(seconds=400))

    status, body = health()

    assert status == 503
    # (400 s set above, and the time the request took: "400s" or "401s" on a slow machine)
    (reason,) = body["reasons"]
    late = re.fullmatch(
        r"the oldest due timer is (\d+)s late \(is the timer sweep running\?\)", reason
    )
    assert late and 400 <= int(late[1]) <= 401
    assert 399 < body["timers"]["oldest_due_seconds"] < 402


# --- real supervisors -----------------------------------------------------------------------------

e2e = [pytest.mark.e2e, pytest.mark.postgres]


def step_definition(key="sup", seconds=0.0, timeout="PT20S"):
    return definition_data(
        key=key,
        stages=[
            (
                "A",
                [
                    {
                        "task_name": "one",
                        "handler": "e2e.work",
                        "seconds": seconds,
                        "timeout": timeout,
                    },
                    {
                        "task_name": "two",
                        "handler": "e2e.work",
                        "seconds": seconds,
                        "timeout": timeout,
                    },
                ],
            )
        ],
    )


def start(key, business_key):
    return engine.process_start(
        definition_key=key, business_key=business_key, actor=Actor.system("test")
    ).process


def state_of(process):
    return ProcessInstance.objects.get(pk=process.pk).state


def step_env(tmp_path, **extra):
    return {
        "FLOWDESK_STEP_MODULES": "tests.e2e_steps",
        "E2E_DIR": str(tmp_path),
        "FLOWDESK_Q_WORKERS": "2",
        "FLOWDESK_Q_TIMEOUT": "30",
        "FLOWDESK_Q_RETRY": "40",
        "FLOWDESK_LEASE_MARGIN": "2",
        **extra,
    }


def wchan(pid):
    try:
        with open(f"/proc/{pid}/wchan") as fh:
            return fh.read()
    except OSError:
        return ""


def leftovers(groups):
    """Processes (zombies included) still in any of these process groups."""
    table = supervisor.process_table()
    return [pid for pid, (_, group, _) in table.items() if group in groups]


@pytest.fixture(params=["orm", "redis"])
def broker(request):
    if request.param == "redis":
        request.getfixturevalue("redis_url")
    return request.param


@pytest.mark.e2e
@pytest.mark.postgres
def test_a_stall_is_logged_alerted_visible_in_healthz_and_repaired(
    broker,
    postgres,
    supervisor,
    simulator_server,  # noqa: F811  (gunicorn serving the project, for /healthz)
    import_definition,
    tmp_path,
):
    admin = UserFactory(username="admin", is_staff=True)
    AlertRecipient.objects.create(user=admin, phone="+33612345678")
    import_definition(step_definition())
    sms_file = tmp_path / "sms.jsonl"
    sup = supervisor(
        broker,
        **step_env(tmp_path),
        FLOWDESK_SMS_BACKEND="integrations.sms.backends.file.SmsBackend",
        FLOWDESK_SMS_FILE_PATH=str(sms_file),
        FLOWDESK_BASE_URL=simulator_server,
    )
    sup.wait_beating()

    def healthz():
        return httpx.get(f"{simulator_server}/healthz", timeout=5)

    assert healthz().status_code == 200
    # The idle monitor waits in the result queue's get() holding its read lock: SIGKILL it
    # there and its replacement blocks on that lock for good. Results, beats included, stop.
    monitor = sup.tree()["monitor"]
    wait_for(lambda: "pipe_read" in wchan(monitor), timeout=10, message="an idle monitor")
    os.kill(monitor, signal.SIGKILL)
    killed = time.monotonic()

    seen = []

    def recovered():
        answer = healthz()
        seen.append((round(time.monotonic() - killed, 1), answer.status_code, answer.json()))
        return (
            answer.status_code == 200
            and seen[0][1] == 200
            and len(seen) > 1
            and any(code == 503 for _, code, _ in seen)
        )

    wait_for(recovered, timeout=40, interval=0.25, message=f"{seen[-3:]}\n{sup.output()[-3000:]}")
    unhealthy = [(t, body["reasons"]) for t, code, body in seen if code == 503]
    print(f"healthz 503 from {unhealthy[0][0]}s to {unhealthy[-1][0]}s after the kill:")
    print(f"  {unhealthy[0][1]} ... {unhealthy[-1][1]}")
    output = sup.output()
    assert "ERROR processes.supervisor: workers stalled: cluster" in output
    assert "ERROR processes.supervisor: restarting qcluster" in output
    wait_for(lambda: len(read_messages(sms_file)) >= 2, timeout=10, message="two SMS")
    stalled, resumed = read_messages(sms_file)
    assert stalled["to"] == resumed["to"] == "+33612345678"
    assert stalled["body"].startswith(
        f"[Flowdesk] Workers stalled: cluster {sup.env['FLOWDESK_Q_NAME']}"
    )
    assert resumed["body"].startswith("[Flowdesk] Workers resumed")
    row = sup.heartbeat()
    assert row.restarts == 1 and row.state == "ok" and row.stalled_since is None

    # and work runs again
    process = start("sup", "AFTER")
    wait_for(lambda: state_of(process) == "completed", timeout=30, message=sup.output()[-3000:])
    time.sleep(2)
    assert len(read_messages(sms_file)) == 2  # nothing more


@pytest.mark.e2e
@pytest.mark.postgres
def test_workers_busy_with_long_steps_are_not_a_stall(
    redis_url, postgres, supervisor, import_definition, tmp_path
):
    # Two workers, each running a process's two steps of 9 s (one message, batch dispatch; no
    # group commit, which could give both messages to one worker): the beats wait 9 s for a free
    # worker, beyond the 4 s stall.
    import_definition(step_definition(seconds=9))
    sup = supervisor(
        "redis",
        **step_env(tmp_path),
        FLOWDESK_STALL_SECONDS="4",
        FLOWDESK_HEARTBEAT_SECONDS="1",
        FLOWDESK_STEP_GROUP="1",
    )
    sup.wait_beating()

    processes = [start("sup", "LONG-1"), start("sup", "LONG-2")]
    wait_for(
        lambda: all(state_of(process) == "completed" for process in processes),
        timeout=40,
        message=sup.output()[-3000:],
    )

    output = sup.output()
    assert "but all 2 workers run steps or deliveries within their time" in output
    assert "stalled" not in output and "restarting" not in output
    assert sup.heartbeat().restarts == 0
    sup.wait_beating(timeout=10)


def wait_exit(proc, timeout):
    started = time.monotonic()
    proc.wait(timeout=timeout)
    return time.monotonic() - started


@pytest.mark.e2e
@pytest.mark.postgres
@pytest.mark.parametrize("who", ["supervisor", "every process"])
def test_sigterm_stops_everything_within_the_step_timeout(
    who, redis_url, postgres, supervisor, import_definition, tmp_path
):
    import_definition(step_definition(seconds=3, timeout="PT10S"))
    sup = supervisor(
        "redis", **step_env(tmp_path), FLOWDESK_SHUTDOWN_GRACE="10", FLOWDESK_STEP_GROUP="1"
    )
    sup.wait_beating()
    # two processes: each worker runs one's two steps (one message each, batch dispatch)
    processes = [start("sup", "TERM-1"), start("sup", "TERM-2")]
    wait_for(lambda: len(sup.tree()["busy"]) == 2, timeout=20, message="both workers busy")
    tree = sup.tree()
    groups = {sup.proc.pid, tree["main"]}

    if who == "supervisor":
        sup.signal(signal.SIGTERM)
    else:  # what systemd does by default: SIGTERM to every process of the unit
        for pid in [sup.proc.pid, *tree["all"]]:
            os.kill(pid, signal.SIGTERM)
    took = wait_exit(sup.proc, timeout=20)

    print(f"SIGTERM to {who}: everything ended after {took:.1f}s")
    assert took < 10 + 3  # the step timeout, and a little
    assert sup.proc.returncode == 0
    assert leftovers(groups) == []  # nothing left, not even a zombie
    assert sup.heartbeat() is None  # deregistered: /healthz counts only who serves
    if who == "supervisor":
        # qcluster stopped cleanly: the running steps finished first
        for process in processes:
            assert process.tasks.filter(state=TaskState.COMPLETED).count() == 2


@pytest.mark.e2e
@pytest.mark.postgres
def test_a_qcluster_hanging_on_sigterm_is_killed_after_the_grace(
    redis_url, postgres, supervisor, import_definition, tmp_path
):
    sup = supervisor("redis", **step_env(tmp_path), FLOWDESK_SHUTDOWN_GRACE="3")
    sup.wait_beating()
    tree = sup.tree()
    os.kill(tree["sentinel"], signal.SIGSTOP)  # it can't stop the cluster any more (#346)

    sup.signal(signal.SIGTERM)
    took = wait_exit(sup.proc, timeout=20)

    assert 3 <= took < 8
    assert "did not stop in 3s: SIGKILL" in sup.output()
    assert leftovers({sup.proc.pid, tree["main"]}) == []


@pytest.mark.e2e
@pytest.mark.postgres
def test_steps_lost_with_a_killed_tree_run_again_at_once(
    redis_url, postgres, supervisor, import_definition, tmp_path
):
    # Redis is at-most-once: steps the pusher had taken die with the tree. The supervisor
    # re-enqueues the scheduled steps after the restart instead of leaving them to the sweep.
    import_definition(step_definition(seconds=0))
    sup = supervisor("redis", **step_env(tmp_path), FLOWDESK_REENQUEUE_AFTER="600")
    sup.wait_beating()
    tree = sup.tree()
    os.kill(tree["pusher"], signal.SIGSTOP)  # a frozen pusher: what it takes is lost
    process = start("sup", "LOST")
    time.sleep(1.5)  # a BLPOP it was in when stopped hands it the steps' message
    from redis import Redis

    # and whatever is still queued goes too (FLOWDESK_STEP_BATCH=1: the other step's message)
    Redis.from_url(redis_url).delete(f"django_q:{sup.env['FLOWDESK_Q_NAME']}:q")
    os.kill(tree["main"], signal.SIGKILL)  # qcluster dies: the supervisor restarts the tree

    wait_for(lambda: state_of(process) == "completed", timeout=30, message=sup.output()[-3000:])
    # (logged just after the steps went back on the queue: they may finish first)
    wait_for(lambda: "scheduled steps enqueued again" in sup.output(), timeout=10, message="log")
    assert ProcessEvent.objects.filter(process=process, type=EventType.TASK_COMPLETED).count() == 2


@pytest.mark.e2e
@pytest.mark.postgres
def test_a_frozen_sentinel_gets_the_tree_restarted(
    redis_url, postgres, supervisor, import_definition, tmp_path
):
    # A sentinel blocked for good (on a lock a dead worker held) still lets beats through, but
    # no longer replaces dead workers, enforces timeouts or runs the schedules (the timer sweep).
    import_definition(step_definition())
    sup = supervisor("redis", **step_env(tmp_path))
    sup.wait_beating()
    frozen = sup.tree()["sentinel"]
    os.kill(frozen, signal.SIGSTOP)

    wait_for(
        lambda: "has not woken up for" in sup.output(), timeout=20, message=sup.output()[-3000:]
    )
    wait_for(lambda: sup.tree()["sentinel"] not in (None, frozen), timeout=20, message="new tree")
    sup.wait_beating(timeout=20)
    assert f"its sentinel (pid {frozen}) has not woken up" in sup.output()
    assert "workers stalled" not in sup.output()  # beats kept coming: no stall, no SMS
    process = start("sup", "AFTER")
    wait_for(lambda: state_of(process) == "completed", timeout=30, message=sup.output()[-3000:])


@pytest.mark.django_db
def test_a_batch_worker_notes_every_step_of_its_batch_and_all_are_requeued(
    import_definition, system_actor, tmp_path, monkeypatch
):
    # batch dispatch: a note names each step its worker runs side by side; the supervisor
    # of a worker killed in the middle enqueues every one of them again
    seen = []

    def look(ctx):
        seen.append(supervisor.core._note(tmp_path / str(os.getpid())))
        return {}

    registry.register("t.look", look)
    try:
        import_definition(
            definition_data(
                key="pgb",
                stages=[
                    (
                        "A",
                        [
                            {"task_name": "x", "handler": "t.look", "timeout": 30},
                            {"task_name": "y", "handler": "t.look", "timeout": 30},
                        ],
                    )
                ],
            )
        )
        monkeypatch.setenv(worker.PROGRESS_DIR_ENV, str(tmp_path))
        monkeypatch.setattr(worker, "progress", Progress())
        process = engine.process_start(
            definition_key="pgb", business_key="P", actor=system_actor
        ).process
        ids = sorted(process.tasks.values_list("pk", flat=True))
        assert worker.run_step(*ids) == "completed"
    finally:
        registry.unregister("t.look")
    assert len(seen) == 2 and all(sorted(task_ids) == ids for _, task_ids in seen)
    assert task_states(process) == {"x": "completed", "y": "completed"}
    # a note left by a dead worker in the middle of that batch: both steps go back to the queue
    worker.progress.busy_until(time.time() + 30, *ids)
    queued = []
    monkeypatch.setattr(supervisor.record, "close_old_connections", lambda: None)  # the atomic
    sup = supervisor.Supervisor(
        supervisor.Config.from_settings(progress_dir=str(tmp_path), cluster="c", command=["true"])
    )
    monkeypatch.setattr(sup, "_requeue", lambda task_ids: queued.extend(task_ids))
    dead = tmp_path / "999999999"
    (tmp_path / str(os.getpid())).rename(dead)
    sup._watch_workers(time.monotonic())
    assert sorted(queued) == ids and not dead.exists()
