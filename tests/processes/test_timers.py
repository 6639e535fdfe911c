"""Timers to the second: the timer loop sleeps until the earliest timer (at most a tick) and acts
on it then; wait deadlines (``on_timeout``) and the process ``deadline``, with a controlled clock."""

import pytest

from integrations.models import AlertRecipient, SmsMessage
from processes import engine, worker
from processes.errors import Conflict
from processes.history import differences
from processes.models import EventType, TaskState
from processes.spec import SpecValidationError
from processes.steps import RetryableStepError, registry
from tests.conftest import record_steps
from tests.factories import UserFactory, complete_task, definition_data

pytestmark = pytest.mark.django_db


@pytest.fixture
def sms(settings):
    settings.FLOWDESK_SMS_BACKEND = "integrations.sms.backends.locmem.SmsBackend"
    AlertRecipient.objects.create(user=UserFactory(is_staff=True), phone="+33612345678")
    return SmsMessage.objects


class LoopStop:
    """The timer loop's ``stop``: each wait moves the clock instead of sleeping."""

    def __init__(self, clock, waits: int):
        self.clock, self.left, self.waits = clock, waits, []

    def is_set(self):
        return self.left <= 0

    def wait(self, seconds):
        self.waits.append(round(seconds, 2))
        self.clock.advance(seconds)
        self.left -= 1


def test_the_timer_loop_sleeps_until_the_next_timer_and_fires_it_then(
    import_definition, system_actor, clock, monkeypatch, django_capture_on_commit_callbacks
):
    # given a step whose first attempt failed with a 5 s back-off
    calls = []

    def flaky(ctx):
        calls.append(ctx.attempt)
        if ctx.attempt == 1:
            raise RetryableStepError("503")
        return {}

    registry.register("t.flaky", flaky)
    enqueued = []
    record_steps(monkeypatch, lambda i, timeout: enqueued.append(i))
    try:
        import_definition(
            definition_data(
                "backoff",
                stages=[
                    (
                        "A",
                        [
                            {
                                "task_name": "pay",
                                "handler": "t.flaky",
                                "retry": {"max_attempts": 2, "backoff": "PT5S"},
                            }
                        ],
                    )
                ],
            )
        )
        process = engine.process_start(
            definition_key="backoff", business_key="B-1", actor=system_actor
        ).process
        pay = process.tasks.get(name="pay")
        worker.run_step(pay.pk)

        # when the loop runs with a long tick
        stop = LoopStop(clock, waits=2)
        with django_capture_on_commit_callbacks(execute=True):
            engine.timer_loop(stop, tick=60)
    finally:
        registry.unregister("t.flaky")

    # then it slept exactly until the back-off ended (not a tick, not a minute), then queued it
    assert 4.9 <= stop.waits[0] <= 5.01
    assert enqueued == [pay.pk]
    assert process.events.filter(type=EventType.TASK_ATTEMPT_FAILED).count() == 1
    # with nothing left, it waits a tick for timers written meanwhile
    assert stop.waits[1] == 60


def test_the_timer_loop_wakes_every_tick_for_timers_written_meanwhile(clock):
    stop = LoopStop(clock, waits=3)
    engine.timer_loop(stop, tick=1)
    assert stop.waits == [1, 1, 1]


# --- deadlines on waits ---------------------------------------------------------------------------


def waits(key, on_timeout=None, human=False, **extra):
    task = (
        {"task_name": "answer", "task_type": "HUMAN", "assigned_to": "clerks", "due": "PT20S"}
        if human
        else {"task_name": "answer", "task_type": "SERVICE", "task_queue": "q", "timeout": "PT20S"}
    )
    if on_timeout:
        task["on_timeout"] = on_timeout
    return definition_data(
        key,
        stages=[("WAIT", [task]), ("END", [{"task_name": "after", "handler": "flowdesk.noop"}])],
        **extra,
    )


def start(key, system_actor, business_key="W-1"):
    return engine.process_start(
        definition_key=key, business_key=business_key, actor=system_actor
    ).process


def sweep(capture):
    with capture(execute=True):
        return worker.sweep_timers()


@pytest.mark.parametrize("human", [False, True], ids=["external timeout", "human due"])
def test_a_wait_past_its_deadline_is_an_incident_with_one_sms_until_answered(
    human, import_definition, system_actor, clock, sms, django_capture_on_commit_callbacks
):
    import_definition(waits("w", human=human))
    process = start("w", system_actor)
    capture = django_capture_on_commit_callbacks

    clock.advance(19)
    assert sweep(capture) == {}
    clock.advance(1)
    assert sweep(capture) == {"incident": 1}
    assert sweep(capture) == {}  # once

    process.refresh_from_db()
    answer = process.tasks.get(name="answer")
    assert process.state == "failed" and answer.state == TaskState.SCHEDULED
    timed_out = process.events.get(type=EventType.TASK_TIMED_OUT)
    assert timed_out.data["action"] == "incident"
    assert sms.count() == 1 and "by its deadline" in sms.get().body

    # the late answer is taken and ends the incident; the process goes on
    complete_task(answer, {"ok": True} if not human else None)
    process.refresh_from_db()
    assert process.state == "running"
    assert process.tasks.get(name="after").state == TaskState.SCHEDULED
    assert differences(process) == []


def test_on_timeout_fail_fails_the_task_and_refuses_the_late_answer(
    import_definition, system_actor, clock, sms, django_capture_on_commit_callbacks
):
    import_definition(waits("f", on_timeout="fail"))
    process = start("f", system_actor)
    clock.advance(21)
    assert sweep(django_capture_on_commit_callbacks) == {"failed": 1}
    answer = process.tasks.get(name="answer")
    assert answer.state == TaskState.FAILED and "deadline" in answer.last_error
    assert sms.count() == 1
    with pytest.raises(Conflict):
        complete_task(answer, {"late": True})
    # the operator retries: it waits again, with a fresh deadline
    engine.task_retry(task_id=answer.pk, actor=system_actor, reason="asked again")
    answer.refresh_from_db()
    assert answer.state == TaskState.SCHEDULED
    process.refresh_from_db()
    assert process.state == "running"


def test_on_timeout_skip_moves_on(
    import_definition, system_actor, clock, sms, django_capture_on_commit_callbacks
):
    import_definition(waits("s", on_timeout="skip", human=True))
    process = start("s", system_actor)
    clock.advance(21)
    assert sweep(django_capture_on_commit_callbacks) == {"skipped": 1}
    process.refresh_from_db()
    assert process.state == "running" and sms.count() == 0
    assert dict(process.tasks.values_list("name", "state")) == {
        "answer": "skipped",
        "after": "scheduled",
    }
    assert differences(process) == []


def test_a_process_deadline_alerts_once(
    import_definition, system_actor, clock, sms, django_capture_on_commit_callbacks
):
    import_definition(waits("d", deadline="PT1M"))  # the wait's own 20 s timeout: incident too
    process = start("d", system_actor)
    clock.advance(60)
    assert sweep(django_capture_on_commit_callbacks) == {"incident": 1, "deadline": 1}
    assert sweep(django_capture_on_commit_callbacks) == {}
    process.refresh_from_db()
    assert process.deadline_at is None
    event = process.events.get(type=EventType.PROCESS_DEADLINE_PASSED)
    assert event.data["deadline"]
    assert sms.count() == 2  # the wait's incident, and the process deadline


@pytest.mark.parametrize(
    "change, error",
    [
        ({"on_timeout": "explode"}, "on_timeout: must be one of: incident, fail, skip"),
        ({"on_timeout": "skip", "timeout": None}, "on_timeout: applies to an external task"),
    ],
)
def test_on_timeout_is_checked(change, error):
    from processes import spec

    data = waits("bad")
    task = data["stages"][0]["tasks"][0]
    task.update(change)
    if task.get("timeout") is None:
        task.pop("timeout", None)
    with pytest.raises(SpecValidationError) as raised:
        spec.parse_or_raise(data, known_handlers=None)
    assert any(error in str(e) for e in raised.value.errors)


def test_a_bad_process_deadline_is_a_field_error():
    from processes import spec

    with pytest.raises(SpecValidationError) as raised:
        spec.parse_or_raise(waits("bad", deadline="soon"), known_handlers=None)
    assert any("deadline" in str(e) for e in raised.value.errors)


def test_a_process_completed_in_time_leaves_no_deadline_timer(import_definition, system_actor):
    import_definition(
        definition_data(
            "quick",
            deadline="P1D",
            stages=[("A", [{"task_name": "x", "handler": "flowdesk.noop"}])],
        )
    )
    process = start("quick", system_actor)
    assert process.deadline_at is not None
    worker.run_step(process.tasks.get(name="x").pk)
    process.refresh_from_db()
    assert process.state == "completed" and process.deadline_at is None
