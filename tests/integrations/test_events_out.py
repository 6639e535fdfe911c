"""Events out: webhooks (signed, retried, dead letters, replay) and Redis streams, in order.

The outbox mechanism they share with the SMS alerts (claims, back-off, dead letters, replay,
takeover) is tested in ``test_outbox.py``; here, what events out sends and in what order.

Receivers are real HTTP servers on 127.0.0.1 (opened with ``FLOWDESK_WEBHOOK_ALLOW_HOSTS``:
loopback is refused otherwise); deliveries run through the same functions the django-q2 task and
the sweep run.
"""

import datetime as dt
import json
import os
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
from processes import engine, queue
from processes.events import Actor
from processes.models import ProcessEvent, ProcessInstance
from tests.conftest import wait_for
from tests.factories import UserFactory

ACTOR = Actor.system("test")
ANSWER = b"receiver says no: db password is hunter2"  # what a receiver answers; never kept


class Receiver:
    """A webhook receiver on 127.0.0.1: answers 500 to the first ``fail`` requests (or to every
    request while ``down``), 200 after; keeps what it got."""

    def __init__(self):
        self.received: list[dict] = []
        self.arrived: list[int] = []  # event ids, as requests arrive
        self.fail = 0
        self.down = False
        self.delay = 0.0
        self.hold: threading.Event | None = None  # set: requests wait until it is set
        self.on_request = None  # called (in the server's thread) as each request arrives
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.arrived.append(json.loads(body)["id"])
                if receiver.on_request is not None:
                    receiver.on_request()
                held = receiver.hold is not None and not receiver.hold.is_set()
                if held:
                    receiver.hold.wait(60)
                time.sleep(receiver.delay)
                with receiver.lock:
                    failing = receiver.down or receiver.fail > 0 or held
                    if receiver.fail > 0:
                        receiver.fail -= 1
                    receiver.received.append(
                        {"headers": dict(self.headers), "body": body, "ok": not failing}
                    )
                self.send_response(500 if failing else 200)
                self.end_headers()
                self.wfile.write(ANSWER if failing else b"ok")

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


@pytest.fixture(autouse=True)
def loopback_receivers(settings):
    """The receivers of these tests listen on 127.0.0.1: open it (webhooks refuse it otherwise)."""
    settings.FLOWDESK_WEBHOOK_ALLOW_HOSTS = "127.0.0.1"


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
    monkeypatch.setattr(queue, "enqueue", lambda func, *args, **kw: queued.append(args))
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
    assert head.status == DeliveryStatus.PENDING and head.last_error == "HTTP 500"

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
    key = f"flowdesk:events:{stream}"
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
        assert subscription.stream_key == key and not client.exists(stream)
        entries = client.xrange(key)
        bodies = [json.loads(fields[b"body"]) for _, fields in entries]
        assert [b["type"] for b in bodies] == ["process_started", "process_cancelled"]
        assert [int(fields[b"event_id"]) for _, fields in entries] == [b["id"] for b in bodies]
    finally:
        client.delete(key)


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


@pytest.mark.django_db
def test_the_events_out_api_negotiates_json_as_the_engine_api_does(webhook):
    from rest_framework.test import APIClient

    from integrations import api as events_api
    from processes.api.base import ApiView

    api = APIClient()
    api.force_authenticate(UserFactory(username="root", is_superuser=True))

    listed = api.get("/api/subscriptions/", HTTP_ACCEPT="text/html")
    form = api.post("/api/subscriptions/", {"name": "x"}, format="multipart")

    assert listed.status_code == 200 and listed["Content-Type"] == "application/json"
    assert form.status_code == 415 and form["Content-Type"] == "application/json"
    # one negotiation for both APIs, not a copy
    assert events_api._View.content_negotiation_class is ApiView.content_negotiation_class


# --- a real cluster ----------------------------------------------------------------------------------


@pytest.mark.e2e
def test_a_real_qcluster_delivers_after_commit(qcluster_factory, receiver, import_definition):
    import_definition("pizza.json", key="pizza")
    EventSubscription.objects.create(name="e2e", definition_key="pizza", url=receiver.url)
    cluster = qcluster_factory(broker="orm", FLOWDESK_WEBHOOK_ALLOW_HOSTS="127.0.0.1")

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


# --- targets: refused at save and at connect ------------------------------------------------------

PUBLIC_URL = "https://93.184.215.14/hook"  # a public address: no lookup, never connected to here


def admin_form(**fields):
    return {
        "name": "x",
        "definition_key": "pizza",
        "kind": "webhook",
        "url": PUBLIC_URL,
        "secret": "s" * 32,
        "stream": "",
        "event_types": "[]",
        "max_attempts": 3,
        "active": "on",
        **fields,
    }


def form_errors(response) -> dict:
    assert response.status_code == 200, response.status_code  # the form again, not a redirect
    return response.context["adminform"].form.errors


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url, says",
    [
        ("http://127.0.0.1:5432/", "127.0.0.1 is a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://10.0.0.5/hook", "10.0.0.5 is a private address"),
        ("http://[::1]:6379/", "::1 is a loopback address"),
        ("http://localhost:8000/hook", "localhost resolves to a loopback address"),
    ],
)
def test_admin_and_api_refuse_an_internal_webhook_target_alike(
    url, says, admin_client, pizza, settings
):
    from rest_framework.test import APIClient

    settings.FLOWDESK_WEBHOOK_ALLOW_HOSTS = ""
    response = admin_client.post(
        reverse("admin:integrations_eventsubscription_add"), admin_form(url=url)
    )
    [admin_says] = form_errors(response)["url"]

    api = APIClient()
    api.force_authenticate(UserFactory(username="root", is_superuser=True))
    answer = api.post(
        "/api/subscriptions/", {"name": "y", "definition_key": "pizza", "url": url}, format="json"
    )

    assert answer.status_code == 400
    assert answer.json()["error"]["fields"]["url"] == [admin_says]
    assert says in admin_says and "FLOWDESK_WEBHOOK_ALLOW_HOSTS" in admin_says
    assert not EventSubscription.objects.exists()


@pytest.mark.django_db
def test_a_delivery_to_an_internal_address_is_refused_at_connect(pizza, receiver, settings):
    # rows written around the save check (from before it, or by code) are refused when sent
    settings.FLOWDESK_WEBHOOK_ALLOW_HOSTS = ""
    by_address = EventSubscription.objects.create(
        name="loopback", definition_key="pizza", url=receiver.url, event_types=["process_started"]
    )
    by_name = EventSubscription.objects.create(
        name="by-name",
        definition_key="pizza",
        url=receiver.url.replace("127.0.0.1", "localhost"),
        event_types=["process_started"],
    )
    process = start_pizza()

    for subscription in (by_address, by_name):
        assert deliver_all(subscription, process) == {"delivered": 0, "failed": 1, "dead": 0}
        head = subscription.deliveries.get()
        assert head.status == DeliveryStatus.PENDING
        assert head.last_error == "refused target: loopback address"
        assert head.log.get().status_code is None
    assert receiver.arrived == []  # nothing reached the receiver


# --- answers: status and timing only --------------------------------------------------------------


@pytest.mark.django_db
def test_the_receivers_answer_is_never_kept_nor_shown(webhook, receiver, admin_client):
    from rest_framework.test import APIClient

    process = start_pizza()
    receiver.fail = 1

    deliver_all(webhook, process)
    events_out.sweep(now=later())

    head = EventDelivery.objects.order_by("event_id").first()
    log = list(head.log.values_list("status_code", "error", "ok"))
    assert log == [(500, "HTTP 500", False), (200, "", True)]
    assert all(a.duration_ms is not None for a in DeliveryAttempt.objects.all())
    pages = [
        admin_client.get(reverse("admin:integrations_eventdelivery_change", args=[head.pk])),
        admin_client.get(reverse("admin:integrations_eventdelivery_changelist")),
    ]
    api = APIClient()
    api.force_authenticate(UserFactory(username="root", is_superuser=True))
    pages.append(api.get(f"/api/subscriptions/{webhook.pk}/deliveries/"))
    for page in pages:
        assert page.status_code == 200
        assert b"hunter2" not in page.content and b"receiver says" not in page.content
    assert b"HTTP 500" in pages[0].content


@pytest.mark.django_db
def test_a_failed_attempt_is_logged_as_a_short_error_class(pizza, receiver, settings):
    settings.FLOWDESK_EVENTS_TIMEOUT = 1
    receiver.delay = 3
    slow = EventSubscription.objects.create(
        name="slow", definition_key="pizza", url=receiver.url, event_types=["process_started"]
    )
    closed = EventSubscription.objects.create(
        name="closed",
        definition_key="pizza",
        url="http://127.0.0.1:9/hook",  # the discard port: nobody listens
        event_types=["process_started"],
    )
    process = start_pizza()

    deliver_all(slow, process)
    deliver_all(closed, process)

    assert slow.deliveries.get().last_error == "timeout"
    assert closed.deliveries.get().last_error == "connection refused"


# --- who may subscribe ----------------------------------------------------------------------------


def staff(username, *codenames):
    from django.contrib.auth.models import Permission

    user = UserFactory(username=username, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


SUBSCRIPTION_PERMS = [
    "add_eventsubscription",
    "change_eventsubscription",
    "delete_eventsubscription",
    "view_eventsubscription",
    "view_eventdelivery",
]


@pytest.fixture
def payroll(import_definition):
    """A second, private definition (the salary case's place)."""
    from tests.factories import definition_data

    return import_definition(definition_data(key="payroll"))


@pytest.mark.django_db
def test_subscribing_needs_view_rights_in_the_admin_and_the_api_alike(payroll):
    from django.test import Client
    from rest_framework.test import APIClient

    clerk = staff("clerk", *SUBSCRIPTION_PERMS)  # the model permissions only
    auditor = staff("auditor", *SUBSCRIPTION_PERMS)
    assign_perm("processes.view_process", auditor, payroll)
    viewer = staff("viewer")  # sees payroll's processes, no model permission
    assign_perm("processes.view_process", viewer, payroll)

    outcomes, refusals = {}, []
    for user in (clerk, auditor, viewer):
        admin = Client()
        admin.force_login(user)
        response = admin.post(
            reverse("admin:integrations_eventsubscription_add"),
            admin_form(name=f"{user.username}-admin", definition_key="payroll"),
        )
        if response.status_code == 200:
            refusals.append(form_errors(response)["definition_key"])
        admin_says = {302: "created", 403: "forbidden", 200: "refused"}[response.status_code]
        api = APIClient()
        api.force_authenticate(user)
        answer = api.post(
            "/api/subscriptions/",
            {"name": f"{user.username}-api", "definition_key": "payroll", "url": PUBLIC_URL},
            format="json",
        )
        if answer.status_code == 400:
            refusals.append(answer.json()["error"]["fields"]["definition_key"])
        api_says = {201: "created", 403: "forbidden", 400: "refused"}[answer.status_code]
        outcomes[user.username] = (admin_says, api_says)

    assert outcomes == {
        "clerk": ("refused", "refused"),
        "auditor": ("created", "created"),
        "viewer": ("forbidden", "forbidden"),
    }
    assert refusals[0] == refusals[1]  # the same words from both entrances
    assert "among those you may see" in refusals[0][0]
    assert sorted(EventSubscription.objects.values_list("name", flat=True)) == [
        "auditor-admin",
        "auditor-api",
    ]


@pytest.mark.django_db
def test_the_admin_lists_only_subscriptions_and_deliveries_the_person_may_see(
    pizza, payroll, receiver
):
    from django.test import Client

    shop = EventSubscription.objects.create(name="shop", definition_key="pizza", url=receiver.url)
    EventSubscription.objects.create(
        name="payroll-export", definition_key="payroll", url=PUBLIC_URL
    )
    start_pizza()
    engine.process_start(definition_key="payroll", business_key="E011-2026-11", actor=ACTOR)
    hidden = EventDelivery.objects.filter(subscription__name="payroll-export").first()
    assert hidden is not None
    clerk = staff("clerk", *SUBSCRIPTION_PERMS)
    assign_perm("processes.view_process", clerk, pizza)
    admin = Client()
    admin.force_login(clerk)

    subscriptions = admin.get(reverse("admin:integrations_eventsubscription_changelist"))
    deliveries = admin.get(reverse("admin:integrations_eventdelivery_changelist"))

    assert [s.name for s in subscriptions.context["cl"].result_list] == ["shop"]
    assert {d.subscription_id for d in deliveries.context["cl"].result_list} == {shop.pk}
    for page in (subscriptions, deliveries):  # not even in a filter's choices
        assert b"payroll" not in page.content
    for url in (
        reverse("admin:integrations_eventdelivery_change", args=[hidden.pk]),
        reverse("admin:integrations_eventsubscription_change", args=[hidden.subscription_id]),
    ):
        assert admin.get(url).status_code == 302  # "doesn't exist", back to the index
    assert (
        admin.post(reverse("admin:integrations_eventdelivery_replay", args=[hidden.pk])).status_code
        == 404
    )


@pytest.mark.django_db
def test_the_api_creates_changes_and_deletes_subscriptions_with_the_same_checks(pizza, payroll):
    from rest_framework.test import APIClient

    owner = staff("owner", *SUBSCRIPTION_PERMS)
    assign_perm("processes.view_process", owner, pizza)
    reader = staff("reader", "view_eventsubscription")
    assign_perm("processes.view_process", reader, pizza)
    stranger = staff("stranger", *SUBSCRIPTION_PERMS)
    api = APIClient()
    api.force_authenticate(owner)

    created = api.post(
        "/api/subscriptions/",
        {"name": "shop", "definition_key": "pizza", "url": PUBLIC_URL, "event_types": []},
        format="json",
    )
    assert created.status_code == 201
    body = created.json()
    assert created["Location"] == f"/api/subscriptions/{body['id']}/"
    assert len(body["secret"]) == 64 and body["kind"] == "webhook" and body["dead"] == 0
    url = f"/api/subscriptions/{body['id']}/"
    shown = api.get(url).json()
    assert shown["name"] == "shop" and "secret" not in shown

    stream = api.post(
        "/api/subscriptions/",
        {"name": "bus", "definition_key": "pizza", "kind": "redis_stream", "stream": "orders"},
        format="json",
    ).json()
    assert stream["stream_key"] == "flowdesk:events:orders" and stream["url"] == ""

    bad = {
        "missing": ({}, {"name", "definition_key"}),
        "metadata": ({"url": "http://169.254.169.254/latest/"}, {"url"}),
        "type": ({"event_types": ["no_such_type"]}, {"event_types"}),
        "range": ({"max_attempts": 0, "secret": "short"}, {"max_attempts", "secret"}),
        "hidden": ({"definition_key": "payroll"}, {"definition_key"}),
        "taken": ({"name": "bus"}, {"name"}),
    }
    for what, (changes, fields) in bad.items():
        if what == "missing":
            answer = api.post("/api/subscriptions/", changes, format="json")
        else:
            answer = api.patch(url, changes, format="json")
        assert answer.status_code == 400, what
        assert set(answer.json()["error"]["fields"]) == fields, what

    paused = api.patch(url, {"active": False, "url": "https://93.184.215.15/v2"}, format="json")
    assert paused.status_code == 200 and paused.json()["active"] is False
    assert EventSubscription.objects.get(pk=body["id"]).url == "https://93.184.215.15/v2"

    api.force_authenticate(stranger)  # may manage subscriptions, may not see pizza
    assert api.get("/api/subscriptions/").json()["results"] == []
    for call in (api.get, api.patch, api.delete):
        assert call(url, {"active": True}, format="json").status_code == 404
    api.force_authenticate(reader)  # sees it, may not change or delete it
    assert api.get(url).status_code == 200
    assert api.patch(url, {"active": True}, format="json").status_code == 403
    assert api.delete(url).status_code == 403
    assert api.get("/api/subscriptions/99999999999999999999999/").status_code == 404

    api.force_authenticate(owner)
    assert api.delete(url).status_code == 204
    assert not EventSubscription.objects.filter(pk=body["id"]).exists()


# --- Redis streams: a namespace of their own ------------------------------------------------------


@pytest.mark.django_db
def test_a_stream_named_after_the_brokers_queue_cannot_touch_it(
    pizza, redis_url, settings, admin_client
):
    import redis
    from rest_framework.test import APIClient

    settings.FLOWDESK_EVENTS_REDIS_URL = redis_url
    client = redis.from_url(redis_url)
    queue_key = f"django_q:t{uuid.uuid4().hex[:8]}:q"  # an idle queue: Redis keeps no empty list
    response = admin_client.post(
        reverse("admin:integrations_eventsubscription_add"),
        admin_form(kind="redis_stream", url="", stream=queue_key),
    )
    assert "stream" in form_errors(response)
    api = APIClient()
    api.force_authenticate(UserFactory(username="root", is_superuser=True))
    answer = api.post(
        "/api/subscriptions/",
        {"name": "q", "definition_key": "pizza", "kind": "redis_stream", "stream": queue_key},
        format="json",
    )
    assert answer.status_code == 400 and "stream" in answer.json()["error"]["fields"]

    # a row written around the checks (from before them) can't reach the broker's keys either
    legacy = EventSubscription.objects.create(
        name="legacy", definition_key="pizza", kind=SubscriptionKind.REDIS_STREAM, stream=queue_key
    )
    # and a valid name that looks like the broker's is a key under flowdesk:events:
    lookalike = EventSubscription.objects.create(
        name="lookalike",
        definition_key="pizza",
        kind=SubscriptionKind.REDIS_STREAM,
        stream="django_q",
    )
    process = start_pizza()
    try:
        assert deliver_all(legacy, process)["failed"] == 1
        assert legacy.deliveries.order_by("event_id").first().last_error == "invalid stream name"
        assert deliver_all(lookalike, process)["delivered"] == process.events.count()
        assert not client.exists(queue_key) and not client.exists("django_q")
        assert client.type("flowdesk:events:django_q") == b"stream"
    finally:
        client.delete(queue_key, "flowdesk:events:django_q")


# --- time: bounded attempts (claims taken over: tests/integrations/test_outbox.py) ------------------


def test_the_delivery_timeout_may_not_exceed_ten_seconds(settings):
    import subprocess
    import sys

    from django.core.exceptions import ImproperlyConfigured

    from tests.conftest import ROOT

    settings.FLOWDESK_EVENTS_TIMEOUT = 30
    with pytest.raises(ImproperlyConfigured):
        events_out.delivery_timeout()
    settings.FLOWDESK_EVENTS_TIMEOUT = 10
    assert events_out.delivery_timeout() == 10

    started = subprocess.run(
        [sys.executable, "-c", "import config.settings"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SECRET_KEY": "x" * 50, "FLOWDESK_EVENTS_TIMEOUT": "30"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode != 0
    assert "FLOWDESK_EVENTS_TIMEOUT: seconds, more than 0 and at most 10" in started.stderr


# --- the migration ----------------------------------------------------------------------------------

MIGRATED = "0005_events_out_short_errors_and_stream_namespace"


@pytest.mark.django_db(transaction=True)
def test_the_migration_drops_kept_answers_and_moves_streams_into_the_namespace():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before = [("integrations", "0004_13b_sms_digest_and_watchdog")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    Subscription = apps.get_model("integrations", "EventSubscription")
    Delivery = apps.get_model("integrations", "EventDelivery")
    Attempt = apps.get_model("integrations", "DeliveryAttempt")
    hook = Subscription.objects.create(name="hook", definition_key="pizza", url=PUBLIC_URL)
    for name, stream in [
        ("q", "django_q:flowdesk:q"),
        ("ok", "orders"),
        ("ns", "flowdesk:events:x"),
    ]:
        Subscription.objects.create(
            name=name, definition_key="pizza", kind="redis_stream", stream=stream
        )
    errors = {
        "HTTP 500: db password is hunter2 " + "x" * 300: "HTTP 500",
        "ReadTimeout: timed out": "timeout",
        "ConnectError: [Errno 111] Connection refused": "connection refused",
        "Redis XADD failed: WRONGTYPE Operation against a key": "Redis error",
        "event 12 no longer exists": "event 12 no longer exists",
    }
    now = timezone.now()
    for i, text in enumerate(errors):
        delivery = Delivery.objects.create(
            subscription_id=hook.pk,
            event_id=i,
            process_id=uuid.uuid4(),
            event_type="process_started",
            last_error=text,
        )
        Attempt.objects.create(delivery=delivery, number=1, started_at=now, error=text)

    executor = MigrationExecutor(connection)
    executor.migrate([("integrations", MIGRATED)])

    assert {(d.event_id, d.last_error) for d in EventDelivery.objects.all()} == set(
        enumerate(errors.values())
    )
    assert sorted(DeliveryAttempt.objects.values_list("error", flat=True)) == sorted(
        errors.values()
    )
    assert dict(EventSubscription.objects.exclude(stream="").values_list("name", "stream")) == {
        "q": "django_q-flowdesk-q",
        "ok": "orders",
        "ns": "x",
    }
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


# --- a real supervised cluster: slow receivers and a worker killed mid-delivery ---------------------


def delivered_all() -> bool:
    return EventDelivery.objects.exists() and not (
        EventDelivery.objects.exclude(status=DeliveryStatus.DELIVERED).exists()
    )


@pytest.mark.e2e
@pytest.mark.postgres
def test_a_slow_receiver_does_not_look_like_a_stalled_cluster(
    redis_url, postgres, supervisor, pizza, receiver
):
    # Each event takes the receiver 3 s: both workers deliver back to back for longer than the
    # 4 s stall, and the heartbeats wait for a free worker. Busy, not stalled: no restart.
    receiver.delay = 3
    EventSubscription.objects.create(name="slow", definition_key="pizza", url=receiver.url)
    sup = supervisor(
        "redis",
        FLOWDESK_Q_WORKERS="2",
        FLOWDESK_STALL_SECONDS="4",
        FLOWDESK_HEARTBEAT_SECONDS="1",
        FLOWDESK_WEBHOOK_ALLOW_HOSTS="127.0.0.1",
        FLOWDESK_EVENTS_TIMEOUT="5",
    )
    sup.wait_beating()
    # (a loaded machine may take longer than the stall to start qcluster: judge from here on)
    started, restarts = len(sup.output()), sup.heartbeat().restarts

    processes = [start_pizza("SLOW-1"), start_pizza("SLOW-2")]
    events = sum(p.events.count() for p in processes)
    assert events >= 6  # (over 9 s of sending per worker)
    wait_for(delivered_all, timeout=90, message=sup.output()[-3000:])

    output = sup.output()[started:]
    assert "but all 2 workers run steps or deliveries within their time" in output
    assert "stalled" not in output and "restarting" not in output
    assert sup.heartbeat().restarts == restarts
    assert sorted(b["id"] for b in receiver.accepted()) == sorted(
        ProcessEvent.objects.filter(process__in=processes).values_list("pk", flat=True)
    )
    sup.wait_beating(timeout=10)


@pytest.mark.e2e
@pytest.mark.postgres
def test_a_delivery_cut_short_is_taken_over_within_a_minute(
    redis_url, postgres, supervisor, pizza, receiver
):
    import signal

    receiver.hold = threading.Event()  # the first request waits; its worker is killed meanwhile
    subscription = EventSubscription.objects.create(
        name="cut", definition_key="pizza", url=receiver.url, event_types=["process_started"]
    )
    sup = supervisor(
        "redis",
        FLOWDESK_WEBHOOK_ALLOW_HOSTS="127.0.0.1",
        FLOWDESK_EVENTS_TIMEOUT="8",
        FLOWDESK_LEASE_MARGIN="2",
    )
    sup.wait_beating()
    restarts = sup.heartbeat().restarts
    start_pizza("CUT")
    wait_for(lambda: receiver.arrived, timeout=30, message=sup.output()[-3000:])
    wait_for(lambda: sup.tree()["busy"], timeout=10, message="the delivering worker's note")
    [sending] = sup.tree()["busy"]

    os.kill(sending, signal.SIGKILL)
    killed = time.monotonic()
    receiver.hold.set()  # its answer goes to a dead connection

    [event_id] = receiver.arrived
    wait_for(
        lambda: event_id in [b["id"] for b in receiver.accepted()],
        timeout=60,
        message=sup.output()[-3000:],
    )
    print(f"delivered again {time.monotonic() - killed:.1f}s after its worker was killed")
    wait_for(delivered_all, timeout=10, message="the outcome recorded")
    delivery = subscription.deliveries.get()
    assert delivery.attempts == 2 and delivery.log.filter(ok=True).count() == 1
    assert f"worker {sending} died in the middle of an event delivery" in sup.output()
    assert sup.heartbeat().restarts == restarts
