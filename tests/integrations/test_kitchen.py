"""The demo's simulated kitchen and courier service: over real HTTP, with the seed's own
events, they bring the pizza orders to the courier's inbox; the courier confirms the delivery
there; and the demo's story is read from that state."""

import httpx
import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token

from integrations.simulators import kitchen
from processes import engine
from processes.events import Actor
from processes.management.commands.demo import ensure_kitchen, story
from processes.models import EventType, ProcessEvent, ProcessInstance
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def order(key):
    return engine.process_start(
        definition_key="pizza", business_key=key, input={}, actor=Actor.system("t")
    ).process


def test_the_kitchen_brings_orders_to_the_courier_who_confirms_them(live_server, pizza, client):
    courier = UserFactory(username="courier", roles=["delivery_executive"])
    ensure_kitchen()
    token = Token.objects.get(user__username="kitchen").key
    first, second = order("ORDER-1"), order("ORDER-2")
    assert "In the kitchen: 2 pizza orders" in " ".join(story("http://demo"))

    headers = {"Authorization": f"Token {token}"}
    with httpx.Client(base_url=live_server.url, headers=headers, timeout=10) as api:
        done = kitchen.work_once(api)  # each queue in the order the orders go through them
        again = kitchen.work_once(api)

    assert done[:2] == ["kitchen: ORDER-1 confirm_order", "kitchen: ORDER-2 confirm_order"]
    assert done[-1] == "courier service: ORDER-2 confirm_delivery" and len(done) == 8
    assert again == []  # nothing waits for them any more
    completed = ProcessEvent.objects.filter(process=first, type=EventType.TASK_COMPLETED)
    assert {e.actor_label for e in completed} == {"kitchen"}
    lines = story("http://demo")
    assert (
        "Pizza deliveries waiting: courier (courier/courier) has 2 (ORDER-1, ORDER-2): "
        "confirm each in http://demo/inbox/."
    ) in lines

    client.force_login(courier)
    inbox = client.get(reverse("tasks_inbox:inbox")).content.decode()
    assert "ORDER-1" in inbox and "ORDER-2" in inbox
    task = first.tasks.get(name="deliver_food")
    client.post(reverse("tasks_inbox:decide", args=[task.pk]), {})

    first.refresh_from_db()
    assert (first.state, first.business_status) == ("completed", "FOOD DELIVERED")
    assert ProcessInstance.objects.get(pk=second.pk).state == "running"
    assert "Completed so far: 1 case." in story("http://demo")
