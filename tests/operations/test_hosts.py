"""Several hosts (issue 30): two worker hosts and two web hosts, each a network namespace with
its own address, on one PostgreSQL and one Redis (reached on the machine's side through socat).

Salary cases are started through both web hosts' API and each approval is decided there by its
manager; in the middle of the run the worker host that runs the timer loop is SIGKILLed whole
(supervisor, qcluster and every worker at once, as a machine that loses power). Then every case
completes with one payout per approved employee, no task completes twice, the history verifies,
the other worker host took the timer loop over, each process deadline that passed fired exactly
once, and ``/healthz`` is healthy with the dead host reported ``gone``.

Skips where namespaces can't be made (not root, no ``ip``/``socat``); CI runs it.
"""

import os
import sys
import threading
import time
from urllib.parse import urlsplit

import httpx
import pytest
from django.db import connection
from rest_framework.authtoken.models import Token

from integrations.models import SimulatorPayout
from integrations.simulators import faults
from processes import history
from processes.models import (
    EventType,
    ProcessEvent,
    ProcessInstance,
    TaskInstance,
    TaskState,
)
from processes.supervisor import lease_holder
from tests.api.conftest import grant
from tests.conftest import ROOT, SUPERVISION_GROUP, need, subprocess_env, wait_for
from tests.factories import UserFactory
from tests.integrations.conftest import salary_test_definition
from tests.integrations.test_salary_e2e import simulator_server  # noqa: F401  (a fixture)
from tests.netns import Network

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.xdist_group(SUPERVISION_GROUP),  # it measures recovery: not beside the others
]

CASES = int(os.environ.get("FLOWDESK_HOSTS_CASES", "200"))
PERIOD = "2026-11"
DEADLINE = 25.0  # seconds: each case's process deadline (a timer that must fire once)


@pytest.fixture
def network(monkeypatch):
    why = Network.available()
    need(why is None, why or "")
    net = Network().create()
    # every server started from here on answers requests addressed to the hosts' addresses
    names = [net.gateway, *(str(net.subnet.network_address + 11 + i) for i in range(4))]
    monkeypatch.setenv("DJANGO_ALLOWED_HOSTS", ",".join(["127.0.0.1", "localhost", *names]))
    yield net
    net.destroy()


def fleet_definition():
    data = salary_test_definition(backoff="PT1S", max_attempts=6)
    for stage in data["stages"]:
        for task in stage["tasks"]:
            if "timeout" in task:
                task["timeout"] = "PT5S"  # a killed step's lease: 5 s + FLOWDESK_LEASE_MARGIN
    data["deadline"] = f"PT{int(DEADLINE)}S"
    return data


def host_env(network, redis_url, simulators, tmp_path, **extra):
    """What a process on a host gets: the database, Redis and simulators at the bridge."""
    db = connection.settings_dict
    pg = network.forward(15432, db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432))
    redis = urlsplit(redis_url)
    rd = network.forward(16379, redis.hostname, redis.port or 6379)
    sim = network.forward(18000, "127.0.0.1", urlsplit(simulators).port)
    return subprocess_env(
        DATABASE_URL=f"postgresql://{db['USER'] or 'postgres'}@{pg}/{db['NAME']}",
        FLOWDESK_REDIS_URL=f"redis://{rd}{redis.path or '/0'}",
        FLOWDESK_Q_NAME=f"hosts{os.getpid()}",
        FLOWDESK_ACCOUNTING_URL=f"http://{sim}/simulators/accounting",
        FLOWDESK_BONUS_URL=f"http://{sim}/simulators/bonus",
        FLOWDESK_BASE_URL=f"http://{sim}",
        FLOWDESK_HTTP_CONNECT_TIMEOUT="2",
        FLOWDESK_HTTP_READ_TIMEOUT="3",
        FLOWDESK_SMS_BACKEND="integrations.sms.backends.file.SmsBackend",
        FLOWDESK_SMS_FILE_PATH=str(tmp_path / "sms.jsonl"),
        FLOWDESK_HEARTBEAT_SECONDS="1",
        FLOWDESK_STALL_SECONDS="6",
        **extra,
    )


def start_worker_host(host, env, tmp_path):
    log = open(tmp_path / f"{host.name}.log", "ab")  # noqa: SIM115 - the host's, until its end
    host.popen(
        [sys.executable, "manage.py", "workers"],
        cwd=ROOT,
        env={
            **env,
            "FLOWDESK_SUPERVISOR_ID": host.name,
            "FLOWDESK_PROGRESS_DIR": str(tmp_path / f"progress-{host.name}"),
            "FLOWDESK_Q_WORKERS": "2",
            "FLOWDESK_Q_TIMEOUT": "15",
            "FLOWDESK_Q_RETRY": "20",
            "FLOWDESK_Q_POLL": "0.1",
            "FLOWDESK_LEASE_MARGIN": "2",
            "FLOWDESK_TIMER_LEASE": "2",
        },
        stdout=log,
        stderr=log,
    )


def start_web_host(host, env, tmp_path) -> str:
    log = open(tmp_path / f"{host.name}.log", "ab")  # noqa: SIM115 - the host's, until its end
    url = f"http://{host.address}:8000"
    host.popen(
        [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py"],
        cwd=ROOT,
        env={
            **env,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "FLOWDESK_BIND": f"{host.address}:8000",
            "FLOWDESK_WEB_WORKERS": "2",
            "FLOWDESK_LOG_LEVEL": "warning",
        },
        stdout=log,
        stderr=log,
    )
    return url


def output(tmp_path, name) -> str:
    path = tmp_path / f"{name}.log"
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def test_two_worker_hosts_two_web_hosts_one_killed_whole_mid_run(
    network,
    redis_url,
    simulator_server,  # noqa: F811
    import_definition,
    tmp_path,
):
    # Given the salary definition (short timeouts, 1 s back-offs, a 25 s deadline), a caller
    # allowed to start it, the two managers, and slow, sometimes failing external systems.
    definition = import_definition(fleet_definition())
    caller = UserFactory(username="payroll-system")
    grant(caller, definition)
    managers = {name: UserFactory(username=name, roles=["managers"]) for name in ("alice", "bob")}
    tokens = {
        name: Token.objects.get_or_create(user=user)[0].key
        for name, user in {"caller": caller, **managers}.items()
    }
    faults.set_faults("accounting", latency_ms=100)
    faults.set_faults("bonus", latency_ms=100, error_rate=0.05)

    # And four hosts: two run `manage.py workers` (one queue), two gunicorn.
    env = host_env(network, redis_url, simulator_server, tmp_path)
    workers = [network.host("w1"), network.host("w2")]
    webs = [network.host("a1"), network.host("a2")]
    for host in workers:
        start_worker_host(host, env, tmp_path)
    urls = [start_web_host(host, env, tmp_path) for host in webs]

    def answers(url):
        try:
            return httpx.get(f"{url}/healthz", timeout=2, trust_env=False).status_code in (200, 503)
        except httpx.HTTPError:
            return False

    for host, url in zip(webs, urls, strict=True):
        wait_for(lambda u=url: answers(u), timeout=60, message=output(tmp_path, host.name))
    from processes.models import ClusterHeartbeat

    def beating(name):
        row = ClusterHeartbeat.objects.filter(pk=name).first()
        return row is not None and row.state == "ok"

    for host in workers:
        wait_for(lambda h=host: beating(h.name), timeout=90, message=output(tmp_path, host.name))
    wait_for(lambda: lease_holder() is not None, timeout=30, message="a timer loop")

    # When 200 cases are started through both web hosts while approvals are decided there ...
    employees = [f"E{101 + i}" for i in range(CASES)]
    rejected = {e for e in employees if int(e[1:]) % 4 == 0}
    started, failures = [], []

    def start_through(url, mine):
        headers = {"Authorization": f"Token {tokens['caller']}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30, trust_env=False) as api:
            for employee in mine:
                answer = api.post(
                    "/api/processes/",
                    json={
                        "definition": "salary-test",
                        "business_key": f"{employee}-{PERIOD}",
                        "input": {"employee_id": employee, "period": PERIOD},
                    },
                )
                (started if answer.status_code == 201 else failures).append(
                    (employee, answer.status_code, answer.text[:200])
                )
                time.sleep(0.05)

    starters = [
        threading.Thread(target=start_through, args=(url, employees[i::2]))
        for i, url in enumerate(urls)
    ]
    for thread in starters:
        thread.start()

    clients = [
        {
            name: httpx.Client(
                base_url=url,
                headers={"Authorization": f"Token {token}"},
                timeout=30,
                trust_env=False,
            )
            for name, token in tokens.items()
        }
        for url in urls
    ]
    decided = 0

    def decide_waiting():
        nonlocal decided
        waiting = TaskInstance.objects.filter(
            process__definition=definition, name="approve_bonus", state=TaskState.SCHEDULED
        ).select_related("assignee", "process")
        for task in waiting:
            if task.assignee is None:
                continue
            employee = task.process.business_key.split("-")[0]
            decision = "reject" if employee in rejected else "approve"
            api = clients[decided % 2][task.assignee.username]
            answer = api.post(f"/api/tasks/{task.pk}/complete/", json={"decision": decision})
            assert answer.status_code in (200, 409), answer.text  # 409: decided meanwhile
            decided += 1

    # ... and, a third of the way in, the worker host running the timer loop dies whole.
    wait_for(
        lambda: (decide_waiting(), len(started) >= CASES // 3)[1],
        timeout=180,
        message=f"a third of the cases started: {failures[:3]}",
    )
    holder = lease_holder() or ""
    doomed = next(h for h in workers if holder.startswith(h.name + "/"))
    survivor = next(h for h in workers if h is not doomed)
    killed_pids = doomed.kill()
    killed_at = time.time()
    assert killed_pids, "the host had processes"

    wait_for(
        lambda: (lease_holder() or "").startswith(survivor.name + "/"),
        timeout=30,
        interval=0.1,
        message=f"the takeover\n{output(tmp_path, survivor.name)}",
    )
    takeover = time.time() - killed_at
    for thread in starters:
        thread.join(timeout=300)
    assert not failures and len(started) == CASES, failures[:5]

    def all_done():
        decide_waiting()
        return not ProcessInstance.objects.filter(definition=definition).exclude(state="completed")

    wait_for(
        all_done,
        timeout=600,
        interval=0.5,
        message=(
            "every case completed; left: "
            + str(
                list(
                    ProcessInstance.objects.filter(definition=definition)
                    .exclude(state="completed")
                    .values_list("business_key", "state")[:10]
                )
            )
            + f"\n{output(tmp_path, survivor.name)}"
        ),
    )
    finished = time.time() - killed_at
    for group in clients:
        for api in group.values():
            api.close()

    # Then every case completed, one payout per approved employee, no task completed twice.
    processes = list(ProcessInstance.objects.filter(definition=definition))
    assert len(processes) == CASES
    assert {p.business_status for p in processes} <= {"PAID", "BONUS REJECTED"}
    payouts = sorted(SimulatorPayout.objects.values_list("employee_id", "period"))
    assert payouts == sorted((e, PERIOD) for e in employees if e not in rejected)
    completed = list(
        ProcessEvent.objects.filter(process__definition=definition, type=EventType.TASK_COMPLETED)
        .values_list("process_id", "task_name")
        .order_by()
    )
    rounds = {}
    for process_id, task_name in completed:
        rounds[(process_id, task_name)] = rounds.get((process_id, task_name), 0) + 1
    assert max(rounds.values()) == 1, "a task completed twice"
    assert not ProcessEvent.objects.filter(
        process__definition=definition, type=EventType.TASK_DUPLICATE
    ).exists()
    assert all(history.differences(p) == [] for p in processes)

    # And each deadline fired once: for a case still running 10 s after it, exactly one event;
    # none for a case done before it (the timer loop moved hosts in between).
    deadline_events = dict.fromkeys((p.pk for p in processes), 0)
    for process_id in ProcessEvent.objects.filter(
        process__definition=definition, type=EventType.PROCESS_DEADLINE_PASSED
    ).values_list("process_id", flat=True):
        deadline_events[process_id] += 1
    assert max(deadline_events.values()) <= 1, "a deadline fired twice"
    for p in processes:
        took = (p.completed_at - p.created_at).total_seconds()
        if took > DEADLINE + 10:
            assert deadline_events[p.pk] == 1, (p.business_key, took)
        elif took < DEADLINE:
            assert deadline_events[p.pk] == 0, (p.business_key, took)
    late = sum(1 for p in processes if deadline_events[p.pk])
    # the survivor saw its peer gone and enqueued what the dead host's cluster had taken
    said = (tmp_path / f"{survivor.name}.log").read_text(errors="replace")
    assert f"supervisor {doomed.name} of queue" in said and "is gone" in said

    # And /healthz is healthy on the web hosts, the dead worker host reported gone.
    def fleet_health(url):
        return httpx.get(f"{url}/healthz", timeout=5, trust_env=False).json()

    wait_for(
        lambda: sorted(fleet_health(urls[0])["workers"]["states"]) == ["gone", "ok"],
        timeout=30,
        message=f"the dead host reported gone: {fleet_health(urls[0])}",
    )
    for url in urls:
        body = fleet_health(url)
        assert body["status"] == "ok", body
        assert sorted(body["workers"]["states"]) == ["gone", "ok"], body
    print(
        f"\n{CASES} cases through 2 web hosts, worker host {doomed.name} SIGKILLed whole "
        f"({len(killed_pids)} processes) after {CASES // 3} starts: timer loop on "
        f"{survivor.name} {takeover:.1f}s later, every case completed {finished:.0f}s after the "
        f"kill; {late} deadlines fired, each once; {decided} decisions through the API"
    )
