"""A web worker keeps a token's user a few seconds (FLOWDESK_TOKEN_CACHE_SECONDS); revocation
made in the same process counts at once, one made elsewhere within that many seconds."""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from processes.api import authentication as base
from tests.api.conftest import grant

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_cache():
    base.token_users.clear()
    yield
    base.token_users.clear()


@pytest.fixture
def clock(monkeypatch):
    """The cache's clock, moved by hand."""

    class Clock:
        now = 1000.0

    monkeypatch.setattr(base.time, "monotonic", lambda: Clock.now)
    return Clock


def token_reads(client, path="/api/processes/") -> int:
    with CaptureQueriesContext(connection) as q:
        assert client.get(path).status_code == 200
    return sum(1 for x in q.captured_queries if "authtoken_token" in x["sql"])


def test_a_token_is_read_once_then_served_from_the_cache(api, system):
    client = api(system)
    assert token_reads(client) == 1
    assert token_reads(client) == 0


def test_the_cache_can_be_turned_off(api, system, settings):
    settings.FLOWDESK_TOKEN_CACHE_SECONDS = 0
    client = api(system)
    assert token_reads(client) == 1
    assert token_reads(client) == 1


def test_a_deleted_token_is_refused_at_once(api, system):
    client = api(system)
    assert client.get("/api/processes/").status_code == 200
    Token.objects.filter(user=system).delete()
    response = client.get("/api/processes/")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Invalid token."


def test_a_change_made_without_signals_counts_once_the_entry_expires(api, system, settings, clock):
    # e.g. another web worker's change as seen here, or a bulk UPDATE (no signal)
    settings.FLOWDESK_TOKEN_CACHE_SECONDS = 5
    client = api(system)
    assert client.get("/api/processes/").status_code == 200
    get_user_model().objects.filter(pk=system.pk).update(is_active=False)
    assert client.get("/api/processes/").status_code == 200  # still within 5 s
    clock.now += 5.1
    response = client.get("/api/processes/")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "User inactive or deleted."


def test_grants_are_not_cached(api, stranger, pizza, system):
    # the user row is cached, never a permission: a grant given is seen on the next call
    from processes import engine
    from processes.events import Actor

    process = engine.process_start(
        definition_key="pizza", business_key="TC-1", actor=Actor.for_user(system)
    ).process
    client = api(stranger)
    assert client.get(f"/api/processes/{process.pk}/").status_code == 404
    grant(stranger, pizza)
    assert client.get(f"/api/processes/{process.pk}/").status_code == 200
