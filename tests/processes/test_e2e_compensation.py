"""Compensations and broker outages end to end, with real ``manage.py workers`` supervisors
(qcluster + the timer loop) on both brokers.

SIGKILL of the workers while they run compensations: every cancelled process still ends
``cancelled`` with each compensation's effect applied once. The broker unreachable: starting and
cancelling through the API answer 201 and 200 with what was committed, and the work completes
once the broker is back.
"""

import os
import signal
import subprocess
import time

import pytest
from guardian.shortcuts import assign_perm
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

import tests.e2e_steps  # noqa: F401  (registers e2e.work / e2e.undo here, so the spec validates)
from processes import engine
from processes.events import Actor
from processes.history import differences
from processes.models import ProcessInstance
from tests.conftest import free_port, wait_for
from tests.factories import UserFactory, definition_data
from tests.processes.test_e2e_qcluster import calls, effects

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


def shop_definition(undo_seconds=2.0):
    def step(name, **extra):
        return {
            "task_name": name,
            "handler": "e2e.work",
            "seconds": 0,
            "compensate": "e2e.undo",
            "undo_seconds": undo_seconds,
            "timeout": "PT6S",
            "retry": {"max_attempts": 2, "backoff": 1},
            **extra,
        }

    return definition_data(
        key="shop",
        stages=[
            ("PAY", [step("reserve"), step("charge", parent_task=["reserve"])]),
            ("SHIP", [{"task_name": "ship", "task_type": "SERVICE", "task_queue": "ship"}]),
        ],
    )


def env(tmp_path, **extra):
    return {
        "FLOWDESK_STEP_MODULES": "tests.e2e_steps",
        "E2E_DIR": str(tmp_path),
        "FLOWDESK_Q_WORKERS": "2",
        "FLOWDESK_Q_TIMEOUT": "30",
        "FLOWDESK_Q_RETRY": "40",
        "FLOWDESK_LEASE_MARGIN": "2",
        "FLOWDESK_REENQUEUE_AFTER": "3",
        **extra,
    }


def state(process):
    return ProcessInstance.objects.get(pk=process.pk).state


def waiting_to_ship(process):
    return process.tasks.get(name="ship").state == "scheduled"


@pytest.fixture(params=["orm", "redis"])
def broker(request):
    if request.param == "redis":
        request.getfixturevalue("redis_url")
    return request.param


def test_workers_killed_during_compensation_every_compensation_runs_once(
    broker, postgres, supervisor, import_definition, tmp_path
):
    # given three paid orders waiting to ship
    import_definition(shop_definition(undo_seconds=2.0))
    sup = supervisor(broker, **env(tmp_path))
    sup.wait_beating()
    actor = Actor.system("test")
    orders = [
        engine.process_start(definition_key="shop", business_key=f"O-{i}", actor=actor).process
        for i in range(3)
    ]
    wait_for(lambda: all(waiting_to_ship(o) for o in orders), timeout=60, message=sup.output())

    # when they are cancelled and the workers running compensations are SIGKILLed twice
    for order in orders:
        assert engine.process_cancel(process_id=order.pk, actor=actor).state == "cancelling"
    killed = 0
    for _ in range(2):
        wait_for(lambda: sup.tree()["busy"], timeout=30, message=f"a busy worker\n{sup.output()}")
        time.sleep(0.5)
        for pid in sup.tree()["busy"]:
            os.kill(pid, signal.SIGKILL)
            killed += 1

    # then every order ends cancelled, each compensation's effect applied once
    wait_for(
        lambda: all(state(o) == "cancelled" for o in orders),
        timeout=120,
        interval=0.5,
        message=f"all cancelled\n{sup.output()[-4000:]}",
    )
    undone = [e for e in effects(tmp_path) if e.endswith("_compensate")]
    assert len(undone) == 6 and len(set(undone)) == 6
    undo_calls = [c for c in calls(tmp_path) if c["key"].endswith(":compensate")]
    assert len(undo_calls) >= 6 + 1  # at least one ran again after a kill, with the same key
    for order in orders:
        order.refresh_from_db()
        assert dict(order.tasks.values_list("name", "state")) == {
            "reserve": "compensated",
            "charge": "compensated",
            "ship": "cancelled",
        }
        undo_order = [c["task"] for c in undo_calls if c["key"].startswith(str(order.pk))]
        assert undo_order.index("charge") < len(undo_order) - undo_order[::-1].index("reserve")
        assert differences(order) == []
    print(f"{broker}: {killed} workers killed, {len(undo_calls)} compensation calls, 6 effects")


class RedisServer:
    """A redis-server of our own on a free port: stopping it is a real broker outage."""

    def __init__(self, tmp_path):
        self.port = free_port()
        self.dir = tmp_path
        self.proc = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self.answers, timeout=10, message="redis-server up")

    def answers(self):
        done = subprocess.run(
            ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True
        )
        return done.stdout.strip() == "PONG"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def test_broker_unreachable_start_is_201_cancel_200_and_the_work_completes_later(
    postgres, supervisor, own_redis, import_definition, tmp_path
):
    shop = import_definition(shop_definition(undo_seconds=0))
    user = UserFactory(username="shop-client")
    for perm in ("start_process", "view_process", "operate_process"):
        assign_perm(f"processes.{perm}", user, shop)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    sup = supervisor("redis", **env(tmp_path, FLOWDESK_REDIS_URL=own_redis.url))
    sup.wait_beating()
    paid = api.post(
        "/api/processes/", {"definition": "shop", "business_key": "PAID"}, format="json"
    )
    assert paid.status_code == 201
    paid_process = ProcessInstance.objects.get(pk=paid.json()["id"])
    wait_for(lambda: waiting_to_ship(paid_process), timeout=60, message=sup.output())

    # when the broker goes away
    own_redis.stop()
    started = api.post(
        "/api/processes/", {"definition": "shop", "business_key": "DURING"}, format="json"
    )
    cancelled = api.post(f"/api/processes/{paid_process.pk}/cancel/", {}, format="json")

    # then both answer with what was committed
    assert started.status_code == 201, started.content
    assert started.json()["state"] == "running"
    assert cancelled.status_code == 200, cancelled.content
    assert cancelled.json()["state"] == "cancelling"

    # and once it is back, the work completes
    own_redis.start()
    new = ProcessInstance.objects.get(pk=started.json()["id"])
    wait_for(
        lambda: waiting_to_ship(new) and state(paid_process) == "cancelled",
        timeout=90,
        interval=0.5,
        message=sup.output()[-4000:],
    )
    assert len([e for e in effects(tmp_path) if e.endswith("_compensate")]) == 2
    assert differences(ProcessInstance.objects.get(pk=paid_process.pk)) == []
