"""Events out: webhooks (signed, retried, dead letters, replay) and Redis streams, in order.

Receivers are real HTTP servers on 127.0.0.1; deliveries run through the same functions the
django-q2 task and the sweep run.
"""

import datetime as dt
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from guardian.shortcuts import assign_perm

from integrations import events_out
from integrations.models import (
    DeliveryAttempt,
    DeliveryStatus,
    EventDelivery,
    EventSubscription,
    SubscriptionKind,
)
from processes import engine
from processes.events import Actor
from processes.models import ProcessEvent, ProcessInstance
from tests.factories import UserFactory

ACTOR = Actor.system("test")


class Receiver:
    """A webhook receiver on 127.0.0.1: answers 500 to the first ``fail`` requests (or to every
    request while ``down``), 200 after; keeps what it got."""

    def __init__(self):
        self.received: list[dict] = []
        self.fail = 0
        self.down = False
        self.delay = 0.0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(receiver.delay)
                with receiver.lock:
                    failing = receiver.down or receiver.fail > 0
                    if receiver.fail > 0:
                        receiver.fail -= 1
                    receiver.received.append(
                        {"headers": dict(self.headers), "body": body, "ok": not failing}
                    )
                self.send_response(500 if failing else 200)
                self.end_headers()
                self.wfile.write(b"receiver says no" if failing else b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def accepted(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.received if r["ok"]]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(autouse=True)
def fast_backoff(settings):
    settings.FLOWDESK_EVENTS_BACKOFF = 0


@pytest.fixture
def webhook(receiver, pizza):
    return EventSubscription.objects.create(
        name="shop-monitor", definition_key="pizza", url=receiver.url, max_attempts=3
    )


def start_pizza(key="ORDER-1"):
    return engine.process_start(
        definition_key="pizza", business_key=key, input={"size": "L"}, actor=ACTOR
    ).process


def deliver_all(subscription, process):
    return events_out.deliver_process(subscription.pk, str(process.pk))


def later(seconds=3600):
    return timezone.now() + dt.timedelta(seconds=seconds)


@pytest.mark.django_db
def test_every_event_gets_an_outbox_row_in_its_transaction_and_is_queued_after_commit(
    webhook, django_capture_on_commit_callbacks, monkeypatch
):
    queued = []
    monkeypatch.setattr(events_out.queue, "enqueue", lambda func, *args, **kw: queued.append(args))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        process = start_pizza()
        event_ids = list(process.events.values_list("pk", flat=True))
        assert list(
            EventDelivery.objects.filter(subscription=webhook).values_list("event_id", flat=True)
        ) == sorted(event_ids)
        assert queued == []  # nothing leaves before the commit
    for callback in callbacks:
        callback()
    assert queued == [(webhook.pk, str(process.pk))]


@pytest.mark.django_db
def test_a_batch_start_writes_the_outbox_rows_of_every_instance(webhook):
    from processes.models import ProcessDefinition

    engine.process_start_batch(
        definition=ProcessDefinition.objects.get(key="pizza", version=1),
        items=[{"business_key": f"B{i}", "input": {"size": "L"}} for i in range(3)],
        actor=ACTOR,
    )
    events = ProcessEvent.objects.filter(process__business_key__startswith="B")
    assert events.count() >= 3
    assert sorted(
        EventDelivery.objects.filter(subscription=webhook).values_list("event_id", flat=True)
    ) == sorted(events.values_list("pk", flat=True))


@pytest.mark.django_db
def test_an_event_rolled_back_leaves_no_delivery(webhook):
    with pytest.raises(RuntimeError), transaction.atomic():
        start_pizza()
        assert EventDelivery.objects.exists()
        raise RuntimeError("the caller's transaction fails after the engine call")
    assert not EventDelivery.objects.exists()
    assert not ProcessEvent.objects.exists()


@pytest.mark.django_db
def test_webhook_gets_each_event_once_signed_in_order(webhook, receiver):
    process = start_pizza()
    engine.process_cancel(process_id=process.pk, actor=ACTOR, reason="customer left")

    outcome = deliver_all(webhook, process)

    events = list(process.events.order_by("pk"))
    assert outcome["delivered"] == len(events)
    bodies = receiver.accepted()
    assert [b["id"] for b in bodies] == [e.pk for e in events]
    assert [b["type"] for b in bodies][-1] == "process_cancelled"
    assert bodies[0]["business_key"] == "ORDER-1" and bodies[0]["definition"] == "pizza"
    for request in receiver.received:
        headers = request["headers"]
        assert events_out.verify(webhook.secret, request["body"], headers["X-Flowdesk-Signature"])
        assert headers["X-Flowdesk-Event-Id"] == str(json.loads(request["body"])["id"])
    assert not events_out.verify(
        "another secret",
        receiver.received[0]["body"],
        receiver.received[0]["headers"]["X-Flowdesk-Signature"],
    )
    assert not EventDelivery.objects.exclude(status=DeliveryStatus.DELIVERED).exists()
    assert deliver_all(webhook, process) == {"delivered": 0, "failed": 0, "dead": 0}


@pytest.mark.django_db
def test_a_failing_receiver_gets_the_event_again_until_it_accepts(webhook, receiver):
    process = start_pizza()
    receiver.fail = 2

    first = deliver_all(webhook, process)
    assert first == {"delivered": 0, "failed": 1, "dead": 0}
    head = EventDelivery.objects.order_by("event_id").first()
    assert head.status == DeliveryStatus.PENDING and head.last_error.startswith("HTTP 500")

    events_out.sweep(now=later())
    events_out.sweep(now=later())

    head.refresh_from_db()
    assert head.status == DeliveryStatus.DELIVERED and head.attempts == 3
    log = list(head.log.values_list("number", "ok", "status_code"))
    assert log == [(1, False, 500), (2, False, 500), (3, True, 200)]
    ids = [json.loads(r["body"])["id"] for r in receiver.received]
    assert ids[:3] == [head.event_id] * 3  # the same event id: the receiver's idempotency key
    assert [b["id"] for b in receiver.accepted()] == sorted(
        process.events.values_list("pk", flat=True)
    )


@pytest.mark.django_db
def test_back_off_doubles_and_is_capped(settings):
    settings.FLOWDESK_EVENTS_BACKOFF = 10
    assert [events_out.backoff(n).total_seconds() for n in (1, 2, 3)] == [10, 20, 40]
    assert events_out.backoff(30) == dt.timedelta(hours=1)


@pytest.mark.django_db
def test_a_later_event_waits_for_an_earlier_undelivered_one(webhook, receiver, settings):
    settings.FLOWDESK_EVENTS_BACKOFF = 60
    process = start_pizza()
    other = start_pizza("ORDER-2")
    receiver.fail = 1

    deliver_all(webhook, process)  # the first event fails and backs off for a minute
    assert receiver.accepted() == []
    events_out.sweep()  # nothing of that process is due: its head backs off
    assert {b["process_id"] for b in receiver.accepted()} == {str(other.pk)}
    engine.process_cancel(process_id=process.pk, actor=ACTOR, reason="late event")
    events_out.sweep()
    assert {b["process_id"] for b in receiver.accepted()} == {str(other.pk)}

    events_out.sweep(now=later())

    got = [b["id"] for b in receiver.accepted() if b["process_id"] == str(process.pk)]
    assert got == sorted(process.events.values_list("pk", flat=True))


@pytest.mark.django_db
def test_dead_letter_blocks_its_process_until_replayed_from_the_admin(
    webhook, receiver, admin_client
):
    process = start_pizza()
    receiver.down = True
    for _ in range(3):
        events_out.sweep(now=later())
    head = EventDelivery.objects.order_by("event_id").first()
    assert head.status == DeliveryStatus.DEAD and head.attempts == 3
    events_out.sweep(now=later())
    assert head.log.count() == 3  # dead: not tried again by the sweep
    assert EventDelivery.objects.filter(status=DeliveryStatus.PENDING).count() >= 1

    page = admin_client.get(reverse("admin:integrations_eventdelivery_change", args=[head.pk]))
    assert b"Replay this dead letter" in page.content
    receiver.down = False
    response = admin_client.post(reverse("admin:integrations_eventdelivery_replay", args=[head.pk]))
    assert response.status_code == 302
    head.refresh_from_db()
    assert head.status == DeliveryStatus.PENDING and head.replays == 1
    deliver_all(webhook, process)  # what the queued task runs

    head.refresh_from_db()
    assert head.status == DeliveryStatus.DELIVERED and head.attempts == 4
    assert [b["id"] for b in receiver.accepted()] == sorted(
        process.events.values_list("pk", flat=True)
    )
    again = admin_client.post(
        reverse("admin:integrations_eventdelivery_replay", args=[head.pk]), follow=True
    )
    assert b"not a dead letter" in again.content


@pytest.mark.django_db
def test_admin_subscription_form_refuses_an_unknown_definition_and_a_webhook_without_url(
    admin_client, pizza
):
    url = reverse("admin:integrations_eventsubscription_add")
    response = admin_client.post(
        url,
        {
            "name": "x",
            "definition_key": "nope",
            "kind": "webhook",
            "url": "",
            "secret": "s",
            "stream": "",
            "event_types": "[]",
            "max_attempts": 3,
            "active": "on",
        },
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "definition_key" in errors and "url" in errors
    response = admin_client.post(
        url,
        {
            "name": "x",
            "definition_key": "pizza",
            "kind": "webhook",
            "url": "http://127.0.0.1:9/h",
            "secret": "s",
            "stream": "",
            "event_types": '["no_such_type"]',
            "max_attempts": 3,
            "active": "on",
        },
    )
    assert "event_types" in response.context["adminform"].form.errors
    assert not EventSubscription.objects.exists()


@pytest.mark.django_db
def test_redis_stream_subscription_xadds_each_event(pizza, redis_url, settings):
    import redis

    settings.FLOWDESK_EVENTS_REDIS_URL = redis_url
    stream = f"flowdesk-test-{uuid.uuid4().hex[:8]}"
    subscription = EventSubscription.objects.create(
        name="bus",
        definition_key="pizza",
        kind=SubscriptionKind.REDIS_STREAM,
        stream=stream,
        event_types=["process_started", "process_cancelled"],
    )
    process = start_pizza()
    engine.process_cancel(process_id=process.pk, actor=ACTOR, reason="test")
    client = redis.from_url(redis_url)
    try:
        assert deliver_all(subscription, process)["delivered"] == 2
        entries = client.xrange(stream)
        bodies = [json.loads(fields[b"body"]) for _, fields in entries]
        assert [b["type"] for b in bodies] == ["process_started", "process_cancelled"]
        assert [int(fields[b"event_id"]) for _, fields in entries] == [b["id"] for b in bodies]
    finally:
        client.delete(stream)


@pytest.mark.django_db
def test_redis_stream_down_is_retried(pizza, settings):
    settings.FLOWDESK_EVENTS_REDIS_URL = "redis://127.0.0.1:1/0"
    subscription = EventSubscription.objects.create(
        name="bus", definition_key="pizza", kind=SubscriptionKind.REDIS_STREAM, stream="s"
    )
    process = start_pizza()
    assert deliver_all(subscription, process)["failed"] == 1
    head = EventDelivery.objects.order_by("event_id").first()
    assert head.status == DeliveryStatus.PENDING and "Redis XADD failed" in head.last_error


# --- API --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_api_lists_subscriptions_dead_letters_and_replays(webhook, receiver, pizza):
    from rest_framework.test import APIClient

    process = start_pizza()
    receiver.down = True
    for _ in range(3):
        events_out.sweep(now=later())
    dead = EventDelivery.objects.get(status=DeliveryStatus.DEAD)

    operator, viewer, stranger = (UserFactory(username=n) for n in ("op", "viewer", "stranger"))
    assign_perm("processes.operate_process", operator, pizza)
    assign_perm("processes.view_process", viewer, pizza)
    api = APIClient()

    api.force_authenticate(stranger)
    assert api.get("/api/subscriptions/").json()["results"] == []
    assert api.get(f"/api/subscriptions/{webhook.pk}/deliveries/").status_code == 404
    assert api.post(f"/api/deliveries/{dead.pk}/replay/").status_code == 404

    api.force_authenticate(viewer)
    [listed] = api.get("/api/subscriptions/").json()["results"]
    assert listed["name"] == "shop-monitor" and listed["dead"] == 1 and "secret" not in listed
    page = api.get(f"/api/subscriptions/{webhook.pk}/deliveries/?status=dead").json()
    assert [d["event_id"] for d in page["results"]] == [dead.event_id]
    assert [a["status_code"] for a in page["results"][0]["log"]] == [500, 500, 500]
    bad = api.get(f"/api/subscriptions/{webhook.pk}/deliveries/?status=lost")
    assert bad.status_code == 400 and "status" in bad.json()["error"]["fields"]
    assert api.post(f"/api/deliveries/{dead.pk}/replay/").status_code == 403

    api.force_authenticate(operator)
    receiver.down = False
    replayed = api.post(f"/api/deliveries/{dead.pk}/replay/")
    assert replayed.status_code == 202 and replayed.json()["status"] == "pending"
    assert api.post(f"/api/deliveries/{dead.pk}/replay/").json()["error"]["code"] == "conflict"
    deliver_all(webhook, process)
    assert EventDelivery.objects.get(pk=dead.pk).status == DeliveryStatus.DELIVERED


# --- concurrency on PostgreSQL ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_delivery_racing_its_replays_is_sent_once_and_logged_once(postgres, receiver, pizza):
    from django.db import connection

    webhook = EventSubscription.objects.create(
        name="race",
        definition_key="pizza",
        url=receiver.url,
        max_attempts=1,
        event_types=["process_started"],
    )
    process = start_pizza()
    receiver.down = True
    deliver_all(webhook, process)
    dead = EventDelivery.objects.get()
    assert dead.status == DeliveryStatus.DEAD
    receiver.down, receiver.delay = False, 0.3
    receiver.received.clear()

    barrier = threading.Barrier(6)
    outcomes = []

    def replay():
        barrier.wait()
        try:
            events_out.replay(dead.pk)
            events_out.deliver_process(webhook.pk, str(process.pk))  # what the queued task runs
            outcomes.append("replayed")
        except Exception as exc:
            outcomes.append(type(exc).__name__)
        finally:
            connection.close()

    def deliver():
        barrier.wait()
        try:
            for _ in range(5):
                events_out.deliver_process(webhook.pk, str(process.pk))
                time.sleep(0.05)
            outcomes.append("delivered")
        finally:
            connection.close()

    threads = [threading.Thread(target=replay) for _ in range(3)]
    threads += [threading.Thread(target=deliver) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    dead.refresh_from_db()
    assert outcomes.count("replayed") == 1 and outcomes.count("Conflict") == 2
    assert dead.status == DeliveryStatus.DELIVERED and dead.replays == 1
    assert len(receiver.received) == 1  # one POST after the replay...
    attempts = DeliveryAttempt.objects.filter(delivery=dead).order_by("number")
    assert [(a.number, a.ok) for a in attempts] == [(1, False), (2, True)]  # ...logged once


@pytest.mark.e2e
def test_a_real_qcluster_delivers_after_commit(qcluster_factory, receiver, import_definition):
    from tests.conftest import wait_for

    import_definition("pizza.json", key="pizza")
    EventSubscription.objects.create(name="e2e", definition_key="pizza", url=receiver.url)
    cluster = qcluster_factory(broker="orm")

    cluster.manage("start_process", "pizza", "ORDER-E2E", "--input", '{"size": "L"}')
    process = ProcessInstance.objects.get(business_key="ORDER-E2E")

    expected = sorted(process.events.values_list("pk", flat=True))
    wait_for(lambda: len(receiver.accepted()) >= len(expected), message="deliveries")
    assert [b["id"] for b in receiver.accepted()] == expected
    wait_for(  # the outcome is written just after the receiver answered
        lambda: not EventDelivery.objects.exclude(status=DeliveryStatus.DELIVERED).exists(),
        message="delivered rows",
    )


@pytest.mark.django_db
def test_subscriptions_are_read_once_per_ttl_not_once_per_event(pizza, receiver):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from integrations.models import _active_cache

    start_pizza("WARM")  # reads the (empty) subscription list once
    with CaptureQueriesContext(connection) as captured:
        start_pizza("NO-READ")
    assert not any("integrations_eventsubscription" in q["sql"] for q in captured.captured_queries)

    EventSubscription.objects.create(name="new", definition_key="pizza", url=receiver.url)
    assert _active_cache == {}  # a change in this process applies at once
    process = start_pizza("AFTER")
    assert EventDelivery.objects.filter(process_id=process.pk).count() == process.events.count()
