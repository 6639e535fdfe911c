"""POST /api/auth/token/ and authentication on every endpoint."""

import pytest
from rest_framework.authtoken.models import Token

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_token_for_valid_credentials(anon):
    # given
    user = UserFactory(username="shop")
    # when
    response = anon.post("/api/auth/token/", {"username": "shop", "password": "pw"}, format="json")
    # then
    assert response.status_code == 200
    assert response.json() == {"token": Token.objects.get(user=user).key}


def test_token_is_stable_across_logins(anon):
    UserFactory(username="shop")
    first = anon.post("/api/auth/token/", {"username": "shop", "password": "pw"}, format="json")
    second = anon.post("/api/auth/token/", {"username": "shop", "password": "pw"}, format="json")
    assert first.json() == second.json()


def test_token_wrong_password_is_400(anon):
    UserFactory(username="shop")
    response = anon.post("/api/auth/token/", {"username": "shop", "password": "x"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_token_inactive_user_is_400(anon):
    UserFactory(username="gone", is_active=False)
    response = anon.post("/api/auth/token/", {"username": "gone", "password": "pw"}, format="json")
    assert response.status_code == 400


def test_token_missing_fields_names_them(anon):
    response = anon.post("/api/auth/token/", {}, format="json")
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"username", "password"}


def test_token_form_body_is_415(anon):
    response = anon.post("/api/auth/token/", {"username": "a", "password": "b"})  # multipart
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize(
    "method,path",
    [
        ("get", "/api/definitions/"),
        ("post", "/api/definitions/"),
        ("get", "/api/definitions/pizza/"),
        ("get", "/api/processes/"),
        ("post", "/api/processes/"),
        ("get", "/api/processes/3f2b8c1e-6a4d-4a8e-9a55-0c1d2e3f4a5b/"),
        ("get", "/api/processes/3f2b8c1e-6a4d-4a8e-9a55-0c1d2e3f4a5b/events/"),
        ("post", "/api/processes/3f2b8c1e-6a4d-4a8e-9a55-0c1d2e3f4a5b/cancel/"),
        ("post", "/api/events/"),
        ("get", "/api/queues/confirm_order_queue/tasks/"),
        ("get", "/api/inbox/"),
        ("get", "/api/stats/trends/"),
        ("post", "/api/tasks/1/claim/"),
        ("post", "/api/tasks/1/release/"),
        ("post", "/api/tasks/1/complete/"),
        ("post", "/api/tasks/1/delegate/"),
    ],
)
def test_anonymous_is_401_everywhere(anon, method, path):
    response = getattr(anon, method)(path, {}, format="json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json()["error"]["code"] == "not_authenticated"


def test_bad_token_is_401(anon):
    anon.credentials(HTTP_AUTHORIZATION="Token nope")
    response = anon.get("/api/processes/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_session_auth_for_people(client):
    user = UserFactory(username="person")
    client.force_login(user)
    assert client.get("/api/processes/").status_code == 200


def test_token_of_a_deactivated_user_is_401(api, system):
    client = api(system)
    assert client.get("/api/processes/").status_code == 200
    system.is_active = False
    system.save(update_fields=["is_active"])
    response = client.get("/api/processes/")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "User inactive or deleted."
