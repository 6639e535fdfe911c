"""Fixtures of the API tests: callers with tokens and per-definition grants."""

import pytest
from guardian.shortcuts import assign_perm
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import UserFactory

START, VIEW, OPERATE = (
    "processes.start_process",
    "processes.view_process",
    "processes.operate_process",
)


def client_for(user=None) -> APIClient:
    """An API client sending ``user``'s token (anonymous without a user)."""
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def grant(user, definition, *perms):
    for perm in perms or (START, VIEW, OPERATE):
        assign_perm(perm, user, definition)


@pytest.fixture
def api(db):
    """``api(user)``: an APIClient authenticated by the user's token."""
    return client_for


@pytest.fixture
def anon(db):
    return APIClient()


@pytest.fixture
def staff(db):
    """An administrator: a superuser (``is_staff`` alone grants nothing in the API)."""
    return UserFactory(username="admin", is_staff=True, is_superuser=True)


@pytest.fixture
def system(pizza):
    """A service account granted start, view and operate on the pizza definition."""
    user = UserFactory(username="shop")
    grant(user, pizza)
    return user


@pytest.fixture
def stranger(db):
    """A service account with no grant at all."""
    return UserFactory(username="stranger")


@pytest.fixture
def viewer(pizza):
    """A service account that may only read pizza processes."""
    user = UserFactory(username="viewer")
    grant(user, pizza, VIEW)
    return user
