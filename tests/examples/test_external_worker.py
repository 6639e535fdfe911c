"""The external worker that locks (examples/external_worker.py, included in
docs/guides/api-clients.md) against a real HTTP server on 127.0.0.1 serving the test database
(PostgreSQL); two OS processes racing ``lock`` never get the same task."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from examples import api_client, external_worker
from processes import engine
from processes.events import Actor
from processes.models import TaskInstance
from tests.api.conftest import grant
from tests.conftest import wait_for
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
QUEUE = "confirm_order_queue"


@pytest.fixture
def server(live_server, pizza):
    grant(UserFactory(username="kitchen", password="kitchen-pw"), pizza)
    return live_server.url


def orders(count: int) -> list[int]:
    """``count`` pizza orders, each with confirm_order waiting in its queue: the task ids."""
    for i in range(count):
        engine.process_start(
            definition_key="pizza", business_key=f"ORDER-{i}", actor=Actor.system("test")
        )
    return list(
        TaskInstance.objects.filter(task_queue=QUEUE, state="scheduled").values_list(
            "pk", flat=True
        )
    )


def test_the_example_worker_locks_does_and_answers_each_task(server):
    ids = orders(5)
    api = api_client.connect(server, "kitchen", "kitchen-pw")
    seen = []

    def confirm(task):
        seen.append(task["task_id"])
        assert task["locked_by"] == "oven-1"
        return {"eta_minutes": 25}

    # a rival holds one task: the worker leaves it alone, and can't answer it
    (held,) = external_worker.lock(api, QUEUE, "rival", max_tasks=1)
    assert external_worker.answer(api, held, "oven-1", result={}) == 409

    done = external_worker.work(api, QUEUE, confirm, worker_id="oven-1", rounds=2, idle=0)
    assert done == 4 and sorted(seen) == sorted(set(ids) - {held["task_id"]})
    # the rival keeps its lock a while, then gives the task back; the worker takes it
    assert external_worker.extend(api, held, "rival", lock_seconds=60)["locked_by"] == "rival"
    assert external_worker.unlock(api, held, "rival")["locked_by"] == ""
    assert external_worker.work(api, QUEUE, confirm, worker_id="oven-1", rounds=1) == 1
    states = set(TaskInstance.objects.filter(pk__in=ids).values_list("state", flat=True))
    assert states == {"completed"}


RACER = """
import json, pathlib, sys, time
from examples import api_client, external_worker
api = api_client.connect(sys.argv[1], "kitchen", "kitchen-pw")
barrier = pathlib.Path(sys.argv[3])
(barrier / sys.argv[2]).touch()
while not (barrier / "go").exists():  # both start together
    time.sleep(0.01)
got, rounds = [], 0
while True:
    rounds += 1
    tasks = external_worker.lock(api, "confirm_order_queue", sys.argv[2], max_tasks=2,
                                 lock_seconds=600)
    if not tasks:
        break
    got += [t["task_id"] for t in tasks]
print(json.dumps({"got": got, "rounds": rounds}))
"""


def test_two_os_processes_racing_lock_never_get_the_same_task(server, tmp_path):
    ids = orders(60)
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, server, f"racer-{n}", str(tmp_path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in (1, 2)
    ]
    wait_for(lambda: all((tmp_path / f"racer-{n}").exists() for n in (1, 2)), timeout=60)
    (tmp_path / "go").touch()
    outs = [json.loads(r.communicate(timeout=120)[0]) for r in racers]
    assert [r.returncode for r in racers] == [0, 0]
    first, second = (set(o["got"]) for o in outs)
    # each took some, in many rounds; none twice; together, every task
    assert sum(len(o["got"]) for o in outs) == len(ids) == len(first | second)
    assert first & second == set()
    assert first | second == set(ids)
    assert all(o["got"] for o in outs)  # both took tasks: they raced
    owners = dict(TaskInstance.objects.filter(pk__in=ids).values_list("pk", "locked_by"))
    assert {owners[i] for i in first} == {"racer-1"} and {owners[i] for i in second} == {"racer-2"}


CRASHER = """
import os, signal, sys
from examples import api_client, external_worker
api = api_client.connect(sys.argv[1], "kitchen", "kitchen-pw")
tasks = external_worker.lock(api, "confirm_order_queue", "doomed", max_tasks=10, lock_seconds=5)
print(len(tasks), flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # dies holding the locks, before any answer
"""


def test_a_worker_killed_holding_locks_gives_its_tasks_back_when_they_expire(server):
    ids = orders(3)
    crasher = subprocess.run(
        [sys.executable, "-c", CRASHER, server], cwd=ROOT, capture_output=True, text=True
    )
    assert crasher.returncode == -9 and crasher.stdout.strip() == "3"
    api = api_client.connect(server, "kitchen", "kitchen-pw")
    assert external_worker.lock(api, QUEUE, "heir") == []  # still the dead worker's

    taken: list = []
    wait_for(lambda: taken.extend(external_worker.lock(api, QUEUE, "heir")) or taken, timeout=30)
    assert sorted(t["task_id"] for t in taken) == sorted(ids)
    assert all(external_worker.answer(api, t, "heir", result={}) == 202 for t in taken)
