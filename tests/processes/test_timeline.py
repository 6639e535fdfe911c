"""The history as people read it (``processes.timeline``): every line names the actor its event
recorded, a branch not taken is the system's "skipped — condition false", one failure is one
line."""

import datetime as dt
from types import SimpleNamespace

import pytest

from processes import engine, timeline
from processes.events import Actor
from processes.models import EventType, ProcessEvent
from tests.factories import UserFactory, definition_data
from tests.tasks_inbox.conftest import approval_definition

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("test")


def event(seq, type, task="", actor_type="system", label="system", correlation="c1", **data):
    return SimpleNamespace(
        seq=seq,
        type=type,
        task_name=task,
        actor_type=actor_type,
        actor_label=label,
        correlation_id=correlation,
        data=data,
        created_at=dt.datetime(2026, 12, 7, tzinfo=dt.UTC),
    )


def lines_of(process) -> list[tuple[str, str]]:
    events = ProcessEvent.objects.filter(process=process).order_by("seq")
    return [(line.text, line.who) for line in timeline.lines(events)]


@pytest.fixture
def approval(import_definition):
    return import_definition(approval_definition())


def start_approval(key="EMP-1"):
    return engine.process_start(
        definition_key="approval",
        business_key=key,
        input={"employee": key, "bonus": 1200},
        actor=SYSTEM,
    ).process


def test_a_branch_not_taken_is_skipped_by_the_system_not_by_the_decider(approval):
    # given mia approves the bonus
    mia = UserFactory(username="mia", roles=["managers"])
    process = start_approval()
    review = process.tasks.get(name="approve_bonus")
    engine.task_decide(
        task_id=review.pk, actor=Actor.for_user(mia), decision="approve", data={"amount": 5}
    )
    # then the reject branch was skipped by the definition's rule, recorded as the system's
    skipped = ProcessEvent.objects.get(process=process, type=EventType.TASK_SKIPPED)
    assert (skipped.task_name, skipped.actor_type, skipped.actor_user) == (
        "notify_rejection",
        "system",
        None,
    )
    assert skipped.data["cause"] == "condition"
    assert ("Notify rejection skipped — condition false", "system") in lines_of(process)
    # and her decision is hers
    assert ("Approve bonus: Approve", "mia") in lines_of(process)


def test_an_operators_skip_names_the_operator_and_their_reason(approval):
    operator = UserFactory(username="stan", is_superuser=True)
    process = start_approval()
    review = process.tasks.get(name="approve_bonus")
    engine.task_skip(task_id=review.pk, actor=Actor.for_user(operator), reason="decided by phone")
    skipped = ProcessEvent.objects.filter(process=process, type=EventType.TASK_SKIPPED)
    by_task = {e.task_name: e for e in skipped}
    assert by_task["approve_bonus"].data["cause"] == "operator"
    lines = lines_of(process)
    assert ("Approve bonus skipped — “decided by phone”", "stan") in lines
    # the branches its skip left without a decision are the system's, not the operator's
    assert ("Record payout skipped — condition false", "system") in lines
    assert ("Notify rejection skipped — condition false", "system") in lines


def test_a_skip_recorded_before_causes_were_is_read_from_its_reason():
    # an event written by an older version: the decider recorded as its actor, no cause
    old = event(
        7,
        EventType.TASK_SKIPPED,
        "notify_rejection",
        actor_type="user",
        label="alice",
        reason="condition false: approve_bonus.decision = 'reject'",
    )
    (line,) = timeline.lines([old])
    assert line.text == "Notify rejection skipped — condition false"
    assert line.who == "alice"  # the actor the event recorded, as recorded
    assert "administrator" not in line.text


@pytest.mark.parametrize(
    ("events", "text"),
    [
        (
            [
                event(4, EventType.TASK_FAILED, "pay", error="500", attempts=3),
                event(5, EventType.PROCESS_FAILED, "pay", error="500"),
            ],
            "Pay failed after 3 tries — an incident is open",
        ),
        (
            [
                event(4, EventType.TASK_TIMED_OUT, "pay", action="fail"),
                event(5, EventType.TASK_FAILED, "pay", error="late", attempts=1),
                event(6, EventType.PROCESS_FAILED, "pay", error="late"),
            ],
            "Pay passed its deadline — it failed — an incident is open",
        ),
        (
            [
                event(4, EventType.TASK_TIMED_OUT, "pay", action="incident"),
                event(5, EventType.PROCESS_FAILED, "pay", error="late"),
            ],
            "Pay passed its deadline — an incident is open",
        ),
        (
            [
                event(4, EventType.TASK_TIMED_OUT, "pay", action="skip"),
                event(5, EventType.TASK_SKIPPED, "pay", reason="late", cause="deadline"),
            ],
            "Pay passed its deadline — skipped",
        ),
        (
            [
                event(4, EventType.COMPENSATION_FAILED, "pay", error="x"),
                event(5, EventType.PROCESS_FAILED, "pay", error="compensation failed"),
            ],
            "Undoing Pay failed — an incident is open",
        ),
    ],
)
def test_one_failure_is_one_line(events, text):
    (line,) = timeline.lines(events)
    assert line.text == text
    assert line.folded == tuple(e.seq for e in events[1:])


def test_failures_of_other_tasks_or_transactions_stay_lines_of_their_own():
    events = [
        event(4, EventType.TASK_FAILED, "pay", attempts=1),
        event(5, EventType.PROCESS_FAILED, "ship"),  # another task's incident
        event(6, EventType.TASK_FAILED, "ship", attempts=1, correlation="c2"),
        event(7, EventType.PROCESS_FAILED, "ship", correlation="c3"),  # another transaction
        event(9, EventType.TASK_FAILED, "pack", attempts=1),
        event(10, EventType.TASK_FAILED, "pack", attempts=1),  # told once per type at most
    ]
    assert [line.event.seq for line in timeline.lines(events)] == [4, 5, 6, 7, 9, 10]


def test_a_failed_step_reads_once_in_the_history_of_a_real_process(import_definition):
    import_definition(
        definition_data(
            "shop", stages=[("PAY", [{"task_name": "charge", "task_queue": "charges"}])]
        )
    )
    process = engine.process_start(definition_key="shop", business_key="O-1", actor=SYSTEM).process
    charge = process.tasks.get(name="charge")
    engine.task_fail(task_id=charge.pk, actor=SYSTEM, error="card declined", retryable=False)
    types = list(
        ProcessEvent.objects.filter(process=process, task=charge).values_list("type", flat=True)
    )
    assert types[-2:] == [EventType.TASK_FAILED, EventType.PROCESS_FAILED]  # the audit log
    told = [text for text, _ in lines_of(process) if "Charge" in text]
    assert told == ["Charge is waiting", "Charge failed — an incident is open"]


@pytest.mark.parametrize(
    ("actor_type", "label", "who"),
    [
        ("user", "mia", "mia"),
        ("api", "shop-frontend", "shop-frontend (API)"),
        ("system", "timer sweep", "system"),
        ("worker", "worker host:123", "worker"),
    ],
)
def test_every_line_names_the_actor_its_event_recorded(actor_type, label, who):
    (line,) = timeline.lines(
        [event(1, EventType.TASK_CLAIMED, "review", actor_type=actor_type, label=label)]
    )
    assert line.who == who
