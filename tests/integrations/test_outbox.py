"""The outbox mechanism (``integrations.outbox``): claim under lock, attempts, back-off, dead
letters and replay, the worker busy while it sends, stale claims taken over.

Every test runs against each user of the mechanism with its real sending: the SMS alerts (a
provider backend that can be down) and the event deliveries (a webhook receiver on 127.0.0.1).
What each user sends, and how, is tested with it (``test_alerts.py``, ``test_events_out.py``).
"""

import datetime as dt
import os
import threading
import time

import pytest
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import Schedule

from integrations import alerts, events_out, outbox
from integrations.models import EventDelivery, EventSubscription, Incident, SmsMessage
from integrations.models.outbox import PENDING, SENDING
from integrations.sms.backends.base import BaseSmsBackend, SmsError
from processes import engine, queue
from processes.errors import Conflict, NotFound
from processes.events import Actor
from tests.integrations.test_events_out import Receiver


class Provider(BaseSmsBackend):
    """An SMS provider: down while ``down``, failing the next ``fail`` sends; keeps what it got."""

    down, fail, delay = False, 0, 0.0
    sent: list = []
    on_send = None

    def send(self, to, body):
        if Provider.on_send is not None:
            Provider.on_send()
        time.sleep(Provider.delay)
        if Provider.down or Provider.fail > 0:
            Provider.fail = max(0, Provider.fail - 1)
            raise SmsError("provider unreachable")
        Provider.sent.append((to, body))
        return self.new_id()


class SmsBox:
    """The SMS alerts' outbox: one incident's SMS are a queue."""

    def __init__(self, settings):
        settings.FLOWDESK_SMS_BACKEND = "tests.integrations.test_outbox.Provider"
        Provider.down, Provider.fail, Provider.delay, Provider.sent = False, 0, 0.0, []
        Provider.on_send = None
        self.outbox = alerts.SMS
        self.incident = Incident.objects.create(key="outbox-test", message="m")

    def write(self, count: int = 1) -> tuple:
        for n in range(count):
            SmsMessage.objects.create(
                incident=self.incident,
                phone=f"+3361234567{n}",
                body=f"SMS {n}",
                next_attempt_at=timezone.now(),
            )
        return (self.incident.pk,)

    def rows(self):
        return SmsMessage.objects.filter(incident=self.incident).order_by("pk")

    def set_down(self, down=True, *, fail=0, delay=0.0, on_send=None):
        Provider.down, Provider.fail, Provider.delay, Provider.on_send = down, fail, delay, on_send

    def sent(self) -> int:
        return len(Provider.sent)


class EventsBox:
    """The events' outbox: a subscription's events of one process are a queue."""

    def __init__(self, settings, receiver, pizza):
        settings.FLOWDESK_WEBHOOK_ALLOW_HOSTS = "127.0.0.1"
        settings.FLOWDESK_EVENTS_BACKOFF = 10
        self.receiver = receiver
        self.outbox = events_out.EVENTS
        self.subscription = EventSubscription.objects.create(
            name="box",
            definition_key="pizza",
            url=receiver.url,
            max_attempts=3,
            event_types=["process_started", "process_cancelled"],
        )

    def write(self, count: int = 1) -> tuple:
        actor = Actor.system("test")
        process = engine.process_start(definition_key="pizza", business_key="B", actor=actor)
        process = process.process
        if count == 2:
            engine.process_cancel(process_id=process.pk, actor=actor, reason="second event")
        return (self.subscription.pk, str(process.pk))

    def rows(self):
        return EventDelivery.objects.filter(subscription=self.subscription).order_by("event_id")

    def set_down(self, down=True, *, fail=0, delay=0.0, on_send=None):
        self.receiver.down, self.receiver.fail = down, fail
        self.receiver.delay, self.receiver.on_request = delay, on_send

    def sent(self) -> int:
        return len(self.receiver.accepted())


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(params=["sms", "events"])
def box(request, settings):
    settings.FLOWDESK_LEASE_MARGIN = 5
    if request.param == "sms":
        return SmsBox(settings)
    return EventsBox(
        settings, request.getfixturevalue("receiver"), request.getfixturevalue("pizza")
    )


@pytest.fixture
def queued(monkeypatch):
    """What the mechanism queues, instead of queueing it."""
    found = []
    monkeypatch.setattr(queue, "enqueue", lambda func, *args, **kw: found.append((func, args)))
    return found


def later(seconds):
    return timezone.now() + dt.timedelta(seconds=seconds)


@pytest.mark.django_db
def test_a_row_is_sent_once(box):
    key = box.write()

    first = box.outbox.run(key)
    second = box.outbox.run(key)

    assert first[box.outbox.words["done"]] == 1 and box.sent() == 1
    assert second == {word: 0 for word in box.outbox.words.values()}
    row = box.rows().get()
    assert row.status == box.outbox.done and row.attempts == 1 and row.last_error == ""
    assert getattr(row, box.outbox.done_field) is not None and row.next_attempt_at is None


@pytest.mark.django_db
def test_a_failed_attempt_backs_off_doubling_capped_at_an_hour(box):
    key = box.write()
    box.set_down()
    first = box.outbox.first_backoff()
    assert [box.outbox.backoff(n) for n in (1, 2, 3)] == [first, first * 2, first * 4]
    assert box.outbox.backoff(30) == outbox.MAX_BACKOFF == dt.timedelta(hours=1)

    before = timezone.now()
    assert box.outbox.run(key)[box.outbox.words["retry"]] == 1
    row = box.rows().get()
    assert row.status == PENDING and row.attempts == 1 and row.last_error
    assert before + first <= row.next_attempt_at <= timezone.now() + first

    assert box.outbox.sweep() == {}  # backing off: nothing due
    assert box.rows().get().attempts == 1
    before = timezone.now()
    box.outbox.sweep(now=row.next_attempt_at)
    again = box.rows().get()
    assert again.attempts == 2
    assert before + first * 2 <= again.next_attempt_at <= timezone.now() + first * 2
    assert box.sent() == 0


@pytest.mark.django_db
def test_after_its_attempts_a_row_is_a_dead_letter_until_replayed(
    box, django_capture_on_commit_callbacks, queued
):
    key = box.write()
    box.set_down()
    attempts = box.outbox.max_attempts(box.rows().get())
    for n in range(attempts):
        box.outbox.sweep(now=later(3600 * (n + 1)))
    dead = box.rows().get()
    assert dead.status == box.outbox.dead and dead.attempts == attempts
    box.outbox.sweep(now=later(3600 * (attempts + 1)))
    assert box.rows().get().attempts == attempts  # a dead letter is not tried again

    with django_capture_on_commit_callbacks(execute=True):
        replayed = box.outbox.replay(dead.pk)
    assert replayed.status == PENDING and replayed.replays == 1
    assert queued == [(box.outbox.task, key)]  # queued after commit
    box.set_down(False)
    box.outbox.run(key)  # what the queued task runs

    row = box.rows().get()
    assert row.status == box.outbox.done and row.attempts == attempts + 1 and box.sent() == 1
    with pytest.raises(Conflict, match="not a dead letter"):
        box.outbox.replay(row.pk)
    for unknown in (row.pk + 1000, "x"):
        with pytest.raises(NotFound):
            box.outbox.replay(unknown)


@pytest.mark.django_db
def test_a_replayed_dead_letter_gets_a_whole_round_of_attempts_again(box):
    box.write()
    row = box.rows().get()
    attempts = box.outbox.max_attempts(row)
    box.rows().update(status=box.outbox.dead, attempts=attempts)
    box.set_down()

    box.outbox.replay(row.pk)
    for n in range(attempts - 1):
        box.outbox.sweep(now=later(3600 * (n + 1)))
        assert box.rows().get().status == PENDING, n
    box.outbox.sweep(now=later(3600 * attempts))

    assert box.rows().get().status == box.outbox.dead
    assert box.rows().get().attempts == 2 * attempts


@pytest.mark.django_db
def test_a_claim_holds_for_the_send_time_and_the_margin_then_is_taken_over(box):
    key = box.write()
    hold = box.outbox.claim_seconds()
    assert hold == box.outbox.send_seconds() + 5 <= 15  # seconds, not minutes
    # a worker claimed the row and died in the middle of sending it
    claimed = timezone.now() - dt.timedelta(seconds=hold - 2)
    box.rows().update(status=SENDING, claimed_at=claimed, attempts=1)

    assert box.outbox.run(key)[box.outbox.words["done"]] == 0  # its claim still holds
    assert box.outbox.due_queues(timezone.now(), 10) == []
    box.rows().update(claimed_at=claimed - dt.timedelta(seconds=3))
    assert box.outbox.due_queues(timezone.now(), 10) == [key]
    assert box.outbox.run(key)[box.outbox.words["done"]] == 1  # taken over

    row = box.rows().get()
    assert row.status == box.outbox.done and row.attempts == 2 and box.sent() == 1


@pytest.mark.django_db
def test_a_worker_sending_notes_itself_busy_until_its_claim_would_expire(
    box, tmp_path, monkeypatch
):
    from processes import supervisor
    from processes.progress import PROGRESS_DIR_ENV, Progress

    monkeypatch.setenv(PROGRESS_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(outbox, "progress", Progress())
    seen = []
    box.set_down(
        False, on_send=lambda: seen.append(supervisor.core._note(tmp_path / str(os.getpid())))
    )
    key = box.write(2)
    before = time.time()

    box.outbox.run(key)

    hold = box.outbox.claim_seconds()
    assert len(seen) == 2  # a note before each claim
    for until, task_ids in seen:
        assert before + hold < until < time.time() + hold + 2 and task_ids == []  # on no step
    assert supervisor.core._note(tmp_path / str(os.getpid())) == (0.0, [])  # idle after


@pytest.mark.django_db
def test_the_supervisor_has_a_dead_workers_claims_taken_over_when_they_expire(
    box, tmp_path, monkeypatch, queued
):
    from processes import supervisor

    key = box.write()
    stale = timezone.now() - dt.timedelta(seconds=box.outbox.claim_seconds() + 1)
    box.rows().update(status=SENDING, claimed_at=stale, attempts=1)
    monkeypatch.setattr(supervisor.record, "close_old_connections", lambda: None)  # the atomic
    sup = supervisor.Supervisor(
        supervisor.Config.from_settings(progress_dir=str(tmp_path), cluster="c", command=["true"])
    )
    requeued = []
    monkeypatch.setattr(sup, "_requeue", requeued.append)
    # a worker that died in the middle of a send: busy for 3 s more, on no step
    (tmp_path / "4194300").write_bytes(b"%20.3f %20d\n" % (time.time() + 3, 0))

    now = time.monotonic()
    sup._watch_workers(now)

    assert requeued == [] and sup.sweeps == []  # no step to run again
    [at] = sup.takeovers
    assert now + 3 < at < now + 4
    sup._take_over_claims()  # what the loop runs then: the claims_expired hook
    assert queued == [(box.outbox.task, key)]


@pytest.mark.django_db
def test_one_failure_holds_an_ordered_queue_and_only_that_row_of_another(box):
    key = box.write(2)
    box.set_down(False, fail=1)  # the first attempt fails, the next ones go through

    outcome = box.outbox.run(key)

    first, second = box.rows()
    assert first.status == PENDING and first.attempts == 1
    assert outcome[box.outbox.words["retry"]] == 1
    if box.outbox.in_order:  # the later row waits behind the earlier one
        assert second.attempts == 0 and box.sent() == 0
    else:  # the others go
        assert second.status == box.outbox.done and box.sent() == 1


@pytest.mark.django_db
def test_a_run_out_of_time_queues_the_rest(box, queued):
    key = box.write()

    outcome = box.outbox.run(key, until=time.monotonic() - 1)

    assert outcome[box.outbox.words["done"]] == 0 and box.sent() == 0
    assert queued == [(box.outbox.task, key)]


@pytest.mark.django_db
def test_send_now_replays_dead_letters_and_ends_back_offs(
    box, queued, django_capture_on_commit_callbacks
):
    key = box.write(2)
    dead, waiting = box.rows()
    box.rows().filter(pk=dead.pk).update(status=box.outbox.dead, attempts=3)
    box.rows().filter(pk=waiting.pk).update(attempts=1, next_attempt_at=later(600))

    with django_capture_on_commit_callbacks(execute=True):
        assert box.outbox.send_now([dead.pk, waiting.pk]) == 2

    assert queued == [(box.outbox.task, key)]
    dead.refresh_from_db()
    waiting.refresh_from_db()
    assert (dead.status, dead.replays) == (PENDING, 1)
    assert waiting.replays == 0 and waiting.next_attempt_at <= timezone.now()
    box.outbox.run(key)
    assert box.sent() == 2
    assert box.outbox.send_now([dead.pk]) == 0  # sent: left as it is


@pytest.mark.django_db(transaction=True)
def test_a_run_racing_replays_sends_once(box, postgres):
    from django.db import connection

    key = box.write()
    row = box.rows().get()
    box.rows().update(status=box.outbox.dead, attempts=box.outbox.max_attempts(row))
    box.set_down(False, delay=0.3)
    barrier = threading.Barrier(6)
    outcomes = []

    def replay():
        barrier.wait()
        try:
            box.outbox.replay(row.pk)
            box.outbox.run(key)  # what the queued task runs
            outcomes.append("replayed")
        except Exception as exc:
            outcomes.append(type(exc).__name__)
        finally:
            connection.close()

    def deliver():
        barrier.wait()
        try:
            for _ in range(5):
                box.outbox.run(key)
                time.sleep(0.05)
        finally:
            connection.close()

    threads = [threading.Thread(target=replay) for _ in range(3)]
    threads += [threading.Thread(target=deliver) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    row = box.rows().get()
    assert sorted(outcomes) == ["Conflict", "Conflict", "replayed"]
    assert row.status == box.outbox.done and row.replays == 1
    assert row.attempts == box.outbox.max_attempts(row) + 1 and box.sent() == 1


@pytest.mark.django_db
def test_every_outbox_is_registered_with_its_task_and_its_schedule():
    assert outbox.OUTBOXES == {"SMS alerts": alerts.SMS, "events out": events_out.EVENTS}
    lines = []

    outbox.ensure_schedules(say=lines.append)

    for user in outbox.OUTBOXES.values():
        assert callable(import_string(user.task)) and callable(import_string(user.schedule_func))
        schedule = Schedule.objects.get(name=user.schedule)
        assert (schedule.func, schedule.minutes) == (user.schedule_func, 1)
    assert sorted(lines) == [
        "schedule flowdesk.events_out: every 1 min",
        "schedule flowdesk.sms_outbox: every 1 min",
    ]
