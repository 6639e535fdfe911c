"""The API client examples (examples/api_client.py, included in docs/guides/api-clients.md)
against a real HTTP server on 127.0.0.1 serving the test database: start, follow, the history,
the seed's events, an external worker and a person's decisions, on the seed's pizza template."""

import httpx
import pytest

from examples import api_client
from tests.api.conftest import grant
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server(live_server, pizza):
    """The kitchen's system (start, view and operate pizza) and a courier."""
    grant(UserFactory(username="kitchen", password="kitchen-pw"), pizza)
    UserFactory(username="rider", password="rider-pw", roles=["delivery_executive"])
    return live_server.url


def test_the_pizza_flow_end_to_end(server):
    done = api_client.pizza_flow(server, "kitchen", "kitchen-pw", courier=("rider", "rider-pw"))
    assert (done["state"], done["business_status"]) == ("completed", "FOOD DELIVERED")

    api = api_client.connect(server, "kitchen", "kitchen-pw")
    events = api_client.history(api, done["id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "process_started" and events[-1]["type"] == "process_completed"
    assert api_client.history(api, done["id"], after=len(events) - 2) == events[-2:]
    assert done["variables"]["confirm_delivery"] == {"eta_minutes": 20}


def test_starting_twice_is_one_instance(server):
    api = api_client.connect(server, "kitchen", "kitchen-pw")
    first = api_client.start(api, "pizza", "ORDER-7", {"size": "M"})
    again = api_client.start(api, "pizza", "ORDER-7", {"size": "M"})
    assert again["id"] == first["id"]
    with pytest.raises(ValueError, match="business_key"):
        api_client.start(api, "pizza", "", {})


def test_seed_events_start_and_a_failed_external_task_is_an_incident(server):
    api = api_client.connect(server, "kitchen", "kitchen-pw")
    started = api_client.send_event(
        api,
        {"business_ref_no": "ORDER-9", "component_name": "ITALIAN", "event_name": "StartWorkflow"},
    )
    assert started["scheduled"] == ["confirm_order"]

    def oven_broken(task):
        raise RuntimeError("the oven is broken")

    assert api_client.work_queue(api, "confirm_order_queue", oven_broken) == 0
    process = api_client.follow(api, started["process"]["id"])
    assert process["state"] == "failed"
    assert process["tasks"][0]["error"] == "the oven is broken"


def test_wrong_credentials_are_refused(server):
    with pytest.raises(httpx.HTTPStatusError):
        api_client.connect(server, "kitchen", "not-the-password")
