"""Child processes start and are cancelled by queued work, after the commit of the request that
caused it: a start or a batch with ``for_each`` children answers as fast as one without, and a
lost message is queued again by the task's timer."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils.module_loading import import_string

from processes import engine, queue, worker
from processes.events import Actor
from processes.models import ProcessInstance, ProcessState, TaskState
from tests.api.conftest import START, VIEW, client_for, grant
from tests.conftest import wait_for
from tests.factories import UserFactory, definition_data

pytestmark = pytest.mark.django_db(transaction=True)


def child_data():
    return definition_data(
        "kid", stages=[("WORK", [{"task_name": "work", "handler": "flowdesk.noop"}])]
    )


def parent_data():
    return definition_data(
        "mum",
        stages=[
            (
                "CALL",
                [
                    {
                        "task_name": "each",
                        "task_type": "PROCESS",
                        "process": {"definition": "kid", "for_each": "numbers"},
                    }
                ],
            ),
            ("END", [{"task_name": "end", "handler": "flowdesk.noop"}]),
        ],
    )


@pytest.fixture
def caller(import_definition, settings):
    """A system with a token, granted to start and see both definitions."""
    settings.FLOWDESK_TOKEN_CACHE_SECONDS = 0  # every request reads its token: alike
    user = UserFactory(username="payroll")
    for definition in (import_definition(child_data()), import_definition(parent_data())):
        grant(user, definition, START, VIEW)
    return client_for(user)


@pytest.fixture
def queued(monkeypatch):
    """What the engine queued, kept here instead of running: ``[(func, args)]``."""
    found = []

    def enqueue(func, *args, **options):
        found.append((func, args))
        return True

    monkeypatch.setattr(queue, "enqueue", enqueue)
    return found


def run_queued(queued, func):
    """Run what was queued for ``func``, as a worker would; forget it."""
    jobs = [args for name, args in queued if name == func]
    queued[:] = [(name, args) for name, args in queued if name != func]
    for args in jobs:
        import_string(func)(*args)
    return len(jobs)


def kids():
    return ProcessInstance.objects.filter(definition_key="kid")


def batch(caller, prefix, children):
    items = [
        {"business_key": f"{prefix}-{i}", "input": {"numbers": list(range(children))}}
        for i in range(3)
    ]
    with CaptureQueriesContext(connection) as statements:
        response = caller.post(
            "/api/processes/batch/", {"definition": "mum", "items": items}, format="json"
        )
    assert response.json()["summary"]["created"] == 3, response.content
    return len(statements)


def test_a_batch_with_children_answers_as_fast_as_one_without(caller, queued):
    batch(caller, "WARM", 1)  # (caches warm: the definition, the spec)

    # when a batch of parents with one child each and one with twenty each are sent
    one = batch(caller, "ONE", 1)
    twenty = batch(caller, "TWENTY", 20)

    # then both requests did the same work, and none of it was a child
    assert one == twenty
    assert kids().count() == 0
    assert ProcessInstance.objects.filter(definition_key="mum").count() == 9
    # the children start once a worker runs what was queued, one message per chunk of parents
    assert run_queued(queued, queue.START_CHILDREN) == 3
    assert kids().count() == 3 * 1 + 3 * 1 + 3 * 20
    each = ProcessInstance.objects.get(business_key="TWENTY-0").tasks.get(name="each")
    assert each.state == TaskState.RUNNING and each.wake_at is None  # its timer is done


def test_a_start_answers_before_its_children_start(caller, queued):
    def start(key, children):
        with CaptureQueriesContext(connection) as statements:
            response = caller.post(
                "/api/processes/",
                {"definition": "mum", "business_key": key, "input": {"numbers": [0] * children}},
                format="json",
            )
        assert response.status_code == 201, response.content
        return len(statements)

    start("WARM", 1)
    assert start("ONE", 1) == start("FIFTY", 50)
    assert kids().count() == 0
    run_queued(queued, queue.START_CHILDREN)
    assert kids().filter(business_key__startswith="FIFTY:").count() == 50


def test_cancelling_a_parent_cancels_its_children_after_its_commit(caller, queued, clock, settings):
    # given a parent whose two children run
    response = caller.post(
        "/api/processes/",
        {"definition": "mum", "business_key": "C-1", "input": {"numbers": [1, 2]}},
        format="json",
    )
    parent = ProcessInstance.objects.get(pk=response.json()["id"])
    run_queued(queued, queue.START_CHILDREN)

    # when an operator cancels it
    engine.process_cancel(process_id=parent.pk, actor=Actor.system("test"), reason="wrong month")

    # then its children still run until a worker runs the queued cancellation
    assert {k.state for k in kids()} == {ProcessState.RUNNING}
    assert [args for name, args in queued if name == queue.CANCEL_CHILDREN] == [(str(parent.pk),)]
    queued.clear()  # the message is lost (a Redis worker died with it)

    # and the cancelled PROCESS task's timer queues it again once due
    each = parent.tasks.get(name="each")
    assert each.state == TaskState.CANCELLED and each.wake_at is not None
    assert worker.sweep_timers() == {}
    clock.advance(settings.FLOWDESK_REENQUEUE_AFTER + 1)
    assert worker.sweep_timers()["cancelling children"] == 1  # (the kids' steps: queued again)
    assert run_queued(queued, queue.CANCEL_CHILDREN) == 1
    assert {k.state for k in kids()} == {ProcessState.CANCELLED}

    # once no child is left, the timer is done
    clock.advance(settings.FLOWDESK_REENQUEUE_AFTER + 1)
    assert worker.sweep_timers() == {"cleared": 1}
    each.refresh_from_db()
    assert each.wake_at is None
    assert worker.sweep_timers() == {}


def test_a_broker_down_after_the_commit_still_answers_and_the_timer_starts_them(
    caller, monkeypatch, queued, clock, settings, caplog
):
    # given a broker that refuses the start of the children
    def refuse(func, *args, **options):
        raise ConnectionError("broker down")

    working = queue.enqueue_children
    monkeypatch.setattr(queue, "enqueue_children", refuse)

    # when a parent starts: the request answers with what was committed
    response = caller.post(
        "/api/processes/",
        {"definition": "mum", "business_key": "B-1", "input": {"numbers": [1]}},
        format="json",
    )
    assert response.status_code == 201
    assert kids().count() == 0 and "left to the timer sweep" in caplog.text

    # then once the broker is back, the task's timer has the children started
    monkeypatch.setattr(queue, "enqueue_children", working)
    clock.advance(settings.FLOWDESK_REENQUEUE_AFTER + 1)
    assert worker.sweep_timers() == {"spawned": 1}
    assert run_queued(queued, queue.START_CHILDREN) == 1
    assert kids().count() == 1


@pytest.mark.e2e
def test_a_cluster_starts_the_children_and_the_parent_completes(
    qcluster_factory, import_definition, tmp_path
):
    import_definition(child_data())
    import_definition(parent_data())
    cluster = qcluster_factory(
        broker="orm",
        FLOWDESK_STEP_MODULES="tests.e2e_steps",
        E2E_DIR=str(tmp_path),
        FLOWDESK_Q_WORKERS="2",
    )
    cluster.manage("start_process", "mum", "E2E-C", "--input", '{"numbers": [1, 2, 3]}')

    def state():
        found = ProcessInstance.objects.filter(business_key="E2E-C").first()
        return found.state if found else None

    wait_for(lambda: state() == "completed", timeout=90, message=cluster.output())
    parent = ProcessInstance.objects.get(business_key="E2E-C")
    assert [k.state for k in parent.children.order_by("business_key")] == ["completed"] * 3
    assert len(parent.variables["each"]["children"]) == 3
