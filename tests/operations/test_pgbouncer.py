"""PgBouncer in transaction mode (issue 30): a real pgbouncer (Debian's, 1.18: no prepared
statements across server connections) between every part and the test PostgreSQL.

``FLOWDESK_DB_POOLER=pgbouncer`` turns psycopg's prepared statements and Django's server-side
cursors off; the timer loop's leader is a lease row (a session advisory lock would not survive
transaction pooling). Through it: the engine path with a real supervised cluster (service steps,
a person's decision, completion), the API served by gunicorn, and SIGKILLs of busy workers in
the middle of their transactions. pgbouncer's own statistics prove the traffic went through it.
"""

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
from django.db import connection
from rest_framework.authtoken.models import Token

import tests.e2e_steps  # noqa: F401  (registers e2e.work, so the definitions validate)
from processes import engine, history
from processes.events import Actor
from processes.models import EventType, ProcessEvent, ProcessInstance, TaskInstance, TaskState
from processes.supervisor import lease_holder
from tests.api.conftest import grant
from tests.conftest import ROOT, wait_for
from tests.factories import UserFactory, complete_task, definition_data

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


def work(name, seconds=0.0):
    return {"task_name": name, "handler": "e2e.work", "seconds": seconds, "timeout": "PT5S"}


def approval_definition(key="pgb", seconds=0.0):
    """Two service steps side by side, a manager's decision, then a last service step."""
    approve = {
        "task_name": "approve",
        "task_type": "HUMAN",
        "assigned_to": "managers",
        "outcomes": ["approve", "reject"],
    }
    return definition_data(
        key=key,
        stages=[
            ("CHECK", [work("check_a", seconds), work("check_b", seconds)]),
            ("APPROVE", [approve]),
            ("BOOK", [work("book", seconds)]),
        ],
    )


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


def transactions(bouncer) -> int:
    return int(bouncer.stats(connection.settings_dict["NAME"]).get("total_xact_count", 0))


def state_of(process) -> str:
    return ProcessInstance.objects.get(pk=process.pk).state


def task_named(process, name) -> TaskInstance:
    return TaskInstance.objects.get(process=process, name=name)


def test_pooler_settings_turn_prepared_statements_and_server_side_cursors_off():
    code = (
        "from django.conf import settings; d = settings.DATABASES['default']; "
        "print(d['OPTIONS'], d.get('DISABLE_SERVER_SIDE_CURSORS', False))"
    )

    def settings_with(**env):
        done = subprocess.run(
            [sys.executable, "-c", f"import django; django.setup(); {code}"],
            cwd=ROOT,
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "tests.settings",
                "DATABASE_URL": "postgresql://postgres@127.0.0.1:6432/flowdesk",
                **env,
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert settings_with(FLOWDESK_DB_POOLER="pgbouncer", FLOWDESK_DB_PREPARE="") == (
        "{'server_side_binding': True, 'prepare_threshold': None} True"
    )
    direct = settings_with(FLOWDESK_DB_POOLER="", FLOWDESK_DB_PREPARE="")
    assert "'prepare_threshold': 5" in direct and direct.endswith("False")
    # PgBouncer >= 1.21 with max_prepared_statements keeps them: the operator may opt in
    assert "'prepare_threshold': 5" in settings_with(
        FLOWDESK_DB_POOLER="pgbouncer", FLOWDESK_DB_PREPARE="5"
    )
    refused = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "FLOWDESK_DB_POOLER": "x"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0 and "FLOWDESK_DB_POOLER" in refused.stderr


def test_the_engine_path_runs_through_pgbouncer(
    through_pgbouncer, redis_url, supervisor, import_definition, tmp_path
):
    # Given a supervised cluster and this test, both connected through pgbouncer.
    before = transactions(through_pgbouncer)
    import_definition(approval_definition())
    sup = supervisor("redis", **step_env(tmp_path), FLOWDESK_TIMER_LEASE="2")
    sup.wait_beating()

    # When a process starts, its steps run on the cluster, a manager decides, the last step runs.
    process = engine.process_start(
        definition_key="pgb", business_key="PGB-1", actor=Actor.system("test")
    ).process
    wait_for(
        lambda: task_named(process, "approve").state == TaskState.SCHEDULED,
        timeout=60,
        message=f"the checks done\n{sup.output()[-3000:]}",
    )
    UserFactory(username="mia", roles=["managers"])
    complete_task(task_named(process, "approve"))  # the manager's decision: its first outcome
    wait_for(lambda: state_of(process) == "completed", timeout=60, message=sup.output()[-3000:])

    # Then it completed with each step once and a clean history, through pgbouncer.
    steps = ProcessEvent.objects.filter(process=process, type=EventType.TASK_COMPLETED)
    assert sorted(steps.values_list("task__name", flat=True)) == [
        "approve",
        "book",
        "check_a",
        "check_b",
    ]
    assert history.differences(ProcessInstance.objects.get(pk=process.pk)) == []
    assert (lease_holder() or "").startswith(sup.supervisor_id + "/")  # the lease row works here
    assert "prepared statement" not in sup.output()
    assert transactions(through_pgbouncer) - before > 20


def test_the_api_served_by_gunicorn_runs_through_pgbouncer(
    through_pgbouncer, web_server, import_definition
):
    # Given gunicorn (2 workers) through pgbouncer, and a caller allowed to start approvals.
    definition = import_definition(
        definition_data(
            key="pga",
            stages=[
                (
                    "APPROVE",
                    [
                        {
                            "task_name": "approve",
                            "task_type": "HUMAN",
                            "assigned_to": "managers",
                            "outcomes": ["approve", "reject"],
                        }
                    ],
                )
            ],
        )
    )
    caller = UserFactory(username="shop")
    grant(caller, definition)
    manager = UserFactory(username="mia", roles=["managers"])
    before = transactions(through_pgbouncer)

    def client(user):
        token, _ = Token.objects.get_or_create(user=user)
        return httpx.Client(
            base_url=web_server.url, headers={"Authorization": f"Token {token.key}"}, timeout=30
        )

    # When 40 processes are started from 4 threads at once (each web worker runs every
    # statement more than 5 times: prepared statements would be used, and lost, here).
    answers = []

    def start_some(offset):
        with client(caller) as api:
            for i in range(10):
                answer = api.post(
                    "/api/processes/", json={"definition": "pga", "business_key": f"A-{offset + i}"}
                )
                answers.append((answer.status_code, answer.text[:300]))

    threads = [threading.Thread(target=start_some, args=(n * 10,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    # Then every start is a 201, and a manager decides one through the API.
    assert [code for code, _ in answers] == [201] * 40, [a for a in answers if a[0] != 201][:3]
    process = ProcessInstance.objects.get(business_key="A-7")
    task = task_named(process, "approve")
    with client(manager) as api:
        decided = api.post(f"/api/tasks/{task.pk}/complete/", json={"decision": "approve"})
        assert decided.status_code == 200, decided.text
        shown = api.get(f"/api/processes/{process.pk}/")
    assert shown.status_code in (200, 404)  # the manager may not view it: the decision counts
    assert state_of(process) == "completed"
    assert "prepared statement" not in web_server.output()
    assert transactions(through_pgbouncer) - before >= 40


def test_busy_workers_sigkilled_mid_transaction_through_pgbouncer_lose_nothing(
    through_pgbouncer, redis_url, supervisor, import_definition, tmp_path
):
    # Given 12 processes whose 3 service steps take 1 s each, on a 3-worker supervised cluster.
    data = approval_definition(key="pgc", seconds=1.0)
    data["stages"] = [data["stages"][0], data["stages"][2]]  # no person: steps only
    import_definition(data)
    sup = supervisor("redis", **step_env(tmp_path, FLOWDESK_Q_WORKERS="3"), FLOWDESK_STEP_BATCH="1")
    sup.wait_beating()
    processes = [
        engine.process_start(
            definition_key="pgc", business_key=f"C-{i}", actor=Actor.system("test")
        ).process
        for i in range(12)
    ]

    # When busy workers are SIGKILLed in the middle of their steps, four times (pgbouncer sees
    # its client vanish inside a transaction).
    kills = 0
    deadline = time.monotonic() + 60
    while kills < 4 and time.monotonic() < deadline:
        busy = sup.tree()["busy"]
        if busy:
            os.kill(busy[0], signal.SIGKILL)
            kills += 1
            time.sleep(1.5)
        else:
            time.sleep(0.1)
    assert kills == 4, sup.output()[-3000:]

    # Then every process completes, each step once, the history clean.
    wait_for(
        lambda: all(state_of(p) == "completed" for p in processes),
        timeout=120,
        message=f"every process completed\n{sup.output()[-3000:]}",
    )
    for process in processes:
        completed = ProcessEvent.objects.filter(process=process, type=EventType.TASK_COMPLETED)
        assert completed.count() == 3
        assert history.differences(ProcessInstance.objects.get(pk=process.pk)) == []
    effects = os.listdir(tmp_path / "effects")
    assert len(effects) == 36  # one effect per step (the external system's idempotency key)
    assert "died in the middle of step" in sup.output()
    assert "prepared statement" not in sup.output()
