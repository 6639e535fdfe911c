"""A message and the task that waits for it, at the same instant, in two OS processes: whichever
commits first, the message is delivered, once (the message's advisory lock: one of the two always
sees the other), never left in the buffer beside a task that waits for it."""

import multiprocessing

import pytest

from processes import engine
from processes.models import EventType, ProcessEvent, ReceivedMessage, TaskInstance
from tests.conftest import subprocess_env
from tests.factories import definition_data
from tests.processes.concurrency_worker import complete_branch, send_messages

REPETITIONS = 60


@pytest.mark.django_db(transaction=True)
def test_a_message_racing_its_task_is_delivered_once(postgres, import_definition, system_actor):
    # given processes whose MESSAGE task starts waiting when their "gate" completes
    import_definition(
        definition_data(
            "race",
            stages=[
                ("GATE", [{"task_name": "gate", "task_queue": "q"}]),
                (
                    "WAIT",
                    [
                        {
                            "task_name": "payment",
                            "task_type": "MESSAGE",
                            "message": {"name": "payment_received", "key": "order_id"},
                        }
                    ],
                ),
            ],
        )
    )
    processes = [
        engine.process_start(
            definition_key="race",
            business_key=f"R{i}",
            input={"order_id": f"ORD-{i}"},
            actor=system_actor,
        ).process
        for i in range(REPETITIONS)
    ]
    gates = [p.tasks.get(name="gate").pk for p in processes]
    keys = [f"ORD-{i}" for i in range(REPETITIONS)]

    # when one OS process opens each wait while another sends its message, at the same moment
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    url = subprocess_env()["DATABASE_URL"]
    workers = [
        ctx.Process(target=complete_branch, args=(url, gates, barrier, results)),
        ctx.Process(target=send_messages, args=(url, keys, barrier, results)),
    ]
    for w in workers:
        w.start()
    outcomes = [results.get(timeout=120) for _ in range(2 * REPETITIONS)]
    for w in workers:
        w.join(timeout=30)

    # then every message reached its task, once, whichever came first
    assert [o for o in outcomes if o[0] != "ok"] == []
    payments = TaskInstance.objects.filter(process__in=processes, name="payment")
    assert set(payments.values_list("state", flat=True)) == {"completed"}
    assert not ReceivedMessage.objects.filter(delivered_at__isnull=True).exists()
    received = ProcessEvent.objects.filter(type=EventType.MESSAGE_RECEIVED)
    assert received.count() == REPETITIONS
    came_first = {o[2] for o in outcomes if len(o) == 3}
    print(f"message first (buffered) or task first (reached): {sorted(came_first)}")
