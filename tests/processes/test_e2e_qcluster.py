"""End to end with real `manage.py qcluster` subprocesses: ORM broker and Redis broker.

A definition with two parallel service steps and a join runs to completion; the same with the
cluster SIGKILLed while a step sleeps, then restarted: the process completes and each step's
effect is applied once.
"""

import json
import time

import pytest

import tests.e2e_steps  # noqa: F401  (registers e2e.work here too, so the definition validates)
from processes.models import ProcessInstance
from tests.conftest import wait_for
from tests.factories import definition_data

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def parallel_definition(left_seconds=1.0, left_gate=None):
    def work(name, seconds, **extra):
        return {"task_name": name, "handler": "e2e.work", "seconds": seconds, **extra}

    return definition_data(
        key="e2e",
        stages=[
            (
                "CALC",
                [
                    work(
                        "left",
                        left_seconds,
                        **({"gate": left_gate} if left_gate else {}),
                        timeout="PT8S",
                        retry={"max_attempts": 2, "backoff": 1},
                    ),
                    work("right", 1.0, timeout="PT8S"),
                    work("join", 0, parent_task=["left", "right"]),
                ],
            ),
            ("END", [work("final", 0, business_status="DONE")]),
        ],
    )


def cluster_env(tmp_path):
    return {
        "FLOWDESK_STEP_MODULES": "tests.e2e_steps",
        "E2E_DIR": str(tmp_path),
        "FLOWDESK_Q_TIMEOUT": "12",
        "FLOWDESK_Q_RETRY": "15",
        "FLOWDESK_Q_WORKERS": "2",
        "FLOWDESK_LEASE_MARGIN": "2",
    }


def calls(tmp_path):
    path = tmp_path / "calls.log"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def effects(tmp_path):
    return sorted(p.name for p in (tmp_path / "effects").glob("*"))


def process_state(business_key):
    process = ProcessInstance.objects.filter(business_key=business_key).first()
    return process.state if process else None


@pytest.fixture(params=["orm", "redis"])
def broker(request):
    if request.param == "redis":
        request.getfixturevalue("redis_url")
    return request.param


def test_parallel_steps_run_to_completion(broker, qcluster_factory, import_definition, tmp_path):
    import_definition(parallel_definition(left_seconds=1.5))
    cluster = qcluster_factory(broker=broker, **cluster_env(tmp_path))

    cluster.manage("start_process", "e2e", "E2E-1", "--input", '{"employee": 7}')

    wait_for(lambda: process_state("E2E-1") == "completed", timeout=60, message=cluster.output())
    process = ProcessInstance.objects.get(business_key="E2E-1")
    assert process.business_status == "DONE"
    left, right = process.variables["left"], process.variables["right"]
    assert left["start"] < right["end"] and right["start"] < left["end"]  # they overlapped
    # side by side: batch dispatch hands both branches to one worker, each in a thread of its own
    # (FLOWDESK_STEP_BATCH=1: one message each, on two worker processes)
    assert (left["pid"], left["thread"]) != (right["pid"], right["thread"])
    assert len(effects(tmp_path)) == 4


def test_killed_worker_resumes_and_applies_each_effect_once(
    broker, qcluster_factory, import_definition, tmp_path
):
    # the left step waits for a gate the test opens only after the crash: however slow or busy
    # the host, the whole cluster is SIGKILLed while left is inside a worker
    import_definition(parallel_definition(left_seconds=0, left_gate="left.open"))
    env = cluster_env(tmp_path)
    cluster = qcluster_factory(broker=broker, **env)
    cluster.manage("start_process", "e2e", "E2E-K")

    wait_for(
        lambda: any(c["task"] == "left" for c in calls(tmp_path)),
        timeout=30,
        message="left to start",
    )
    time.sleep(0.5)
    cluster.kill()
    assert all("left" not in e for e in effects(tmp_path))
    (tmp_path / "left.open").touch()

    restarted = qcluster_factory(broker=broker, **env)

    def completed_or_swept():
        # The engine's own timer sweep (one schedule in production) reclaims expired leases;
        # with Redis, a message in flight is lost and only the sweep brings the step back.
        if process_state("E2E-K") == "completed":
            return True
        restarted.manage("sweep_timers")
        return process_state("E2E-K") == "completed"

    wait_for(completed_or_swept, timeout=90, interval=2, message=restarted.output())

    process = ProcessInstance.objects.get(business_key="E2E-K")
    left_calls = [c for c in calls(tmp_path) if c["task"] == "left"]
    assert len(left_calls) == 2  # ran again after the crash...
    assert left_calls[0]["key"] == left_calls[1]["key"]  # ...with the same idempotency key
    assert len(effects(tmp_path)) == 4  # each step's effect applied once
    assert process.tasks.get(name="left").attempts == 2
    assert process.tasks.get(name="join").state == "completed"
    types = list(process.events.values_list("type", flat=True))
    assert types.count("process_completed") == 1
