"""POST /api/processes/{id}/variables/: an explicit, separately granted, audited correction."""

import pytest
from guardian.shortcuts import assign_perm

from processes import engine, history
from processes.events import Actor
from processes.models import EventType
from tests.api.conftest import VIEW, grant
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
CORRECT = "processes.correct_variables"


@pytest.fixture
def order(pizza):
    return engine.process_start(
        definition_key="pizza",
        business_key="O-1",
        input={"size": "L", "address": {"street": "Main 1", "city": "Lyon"}},
        actor=Actor.system("t"),
    ).process


@pytest.fixture
def fixer(pizza):
    user = UserFactory(username="fixer")
    assign_perm(CORRECT, user, pizza)
    return user


def url(process):
    return f"/api/processes/{process.pk}/variables/"


def test_a_correction_is_one_event_with_before_and_after(api, fixer, order):
    body = {
        "set": {"address.street": "Main 2", "note": "ring twice"},
        "unset": ["size"],
        "reason": "customer called",
    }
    response = api(fixer).post(url(order), body, format="json")
    assert response.status_code == 200
    assert response.json()["variables"] == {
        "address": {"street": "Main 2", "city": "Lyon"},
        "note": "ring twice",
    }
    (event,) = order.events.filter(type=EventType.VARIABLES_CHANGED)
    assert event.actor_user == fixer
    assert event.data == {
        "reason": "customer called",
        "changes": {
            "address.street": {"before": "Main 1", "after": "Main 2"},
            "note": {"after": "ring twice"},
            "size": {"before": "L"},
        },
    }
    order.refresh_from_db()
    assert history.differences(order) == []  # the history rebuilds the corrected state


def test_the_correction_needs_its_own_grant(api, pizza, order):
    viewer = UserFactory(username="viewer")
    grant(viewer, pizza, VIEW)
    operator = UserFactory(username="operator")
    grant(operator, pizza)  # start, view, operate: not correct
    body = {"set": {"size": "S"}, "reason": "x"}
    assert api(viewer).post(url(order), body, format="json").status_code == 403
    assert api(operator).post(url(order), body, format="json").status_code == 403
    stranger = UserFactory(username="stranger")
    assert api(stranger).post(url(order), body, format="json").status_code == 404
    order.refresh_from_db()
    assert order.variables["size"] == "L"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"set": {"size": "S"}}, "reason"),
        ({"set": {"size": "S"}, "reason": "   "}, "reason"),
        ({"reason": "nothing"}, "set"),
        ({"set": {"size": "L"}, "reason": "same value"}, "set"),
        ({"set": {"bad path!": 1}, "reason": "x"}, "set.bad path!"),
        ({"set": {"size.inner": 1}, "reason": "x"}, "set"),
        ({"set": "size=S", "reason": "x"}, "set"),
        ({"unset": "size", "reason": "x"}, "unset"),
    ],
)
def test_bad_corrections_are_400_with_the_field_and_change_nothing(api, fixer, order, body, field):
    seq = order.last_seq
    response = api(fixer).post(url(order), body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"], response.json()
    order.refresh_from_db()
    assert order.last_seq == seq and order.variables["size"] == "L"


def test_a_closed_process_is_history(api, fixer, order):
    engine.process_cancel(process_id=order.pk, actor=Actor.system("t"))
    response = api(fixer).post(url(order), {"set": {"size": "S"}, "reason": "x"}, format="json")
    assert response.status_code == 409
