"""The one error shape, body limits, content types, Django-level errors, Idempotency-Key."""

import json

import pytest
from django.http import HttpResponse
from django.test import RequestFactory

from processes.api.middleware import ApiErrorMiddleware
from processes.api.models import IdempotencyRecord
from processes.models import ProcessInstance

pytestmark = pytest.mark.django_db

START = {"definition": "pizza", "business_key": "ORDER-001", "input": {}}


def assert_error_shape(response, status, code=None):
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) >= {"code", "message", "fields"}
    if code:
        assert error["code"] == code
    return error


def raw_post(client, path, body: str | bytes, content_type="application/json", **headers):
    return client.generic("POST", path, body, content_type=content_type, **headers)


def test_body_over_one_mb_is_413(api, system):
    body = json.dumps({**START, "input": {"blob": "x" * (1024 * 1024)}})
    response = raw_post(api(system), "/api/processes/", body)
    assert_error_shape(response, 413, "too_large")
    assert ProcessInstance.objects.count() == 0


def test_body_over_one_mb_is_413_even_anonymous_and_form_encoded(anon):
    response = raw_post(anon, "/api/events/", "a=" + "x" * (1024 * 1024 + 10), "text/plain")
    assert_error_shape(response, 413)


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/xml", ""],
)
def test_non_json_body_is_415(api, system, content_type):
    response = raw_post(api(system), "/api/processes/", "definition=pizza", content_type)
    assert_error_shape(response, 415, "unsupported_media_type")


def test_json_with_charset_is_accepted(api, system):
    response = raw_post(
        api(system), "/api/processes/", json.dumps(START), "application/json; charset=utf-8"
    )
    assert response.status_code == 201


@pytest.mark.parametrize(
    "body",
    [
        "{",
        '{"definition": "pizza", "business_key": "A", "input": {"x": NaN}}',
        '{"definition": "pizza", "business_key": "A", "input": {"x": 1e400}}',
        '{"definition": "pizza", "business_key": "A", "input": {"x": "a\\u0000b"}}',
        '{"definition": "pizza", "business_key": "A", "input": {"a\\u0000": 1}}',
        '{"definition": "pizza", "business_key": "A", "input": {"x": "\\ud800"}}',
        '{"definition": "pizza", "business_key": "A", "input": ' + "[" * 100 + "]" * 100 + "}",
        "[" * 100000 + "]" * 100000,
        b"\xff\xfe not utf-8",
    ],
)
def test_bad_json_is_400_never_500(api, system, body):
    error = assert_error_shape(raw_post(api(system), "/api/processes/", body), 400)
    assert error["code"] == "parse_error"
    assert ProcessInstance.objects.count() == 0


def test_nul_in_a_field_is_400(api, system):
    response = api(system).post(
        "/api/processes/", {**START, "business_key": "A\x00B"}, format="json"
    )
    assert_error_shape(response, 400)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            '{"definition": "pizza", "business_key": "A", "input": {"x": {"y": "a\\u0000"}}}',
            "input.x.y",
        ),
        ('{"definition": "pizza", "business_key": "A", "input": {"x": [1, 1e400]}}', "input.x.1"),
        ('{"definition": "pizza", "business_key": "A\\u0000"}', "business_key"),
    ],
)
def test_a_value_that_cant_be_stored_names_its_field(api, system, body, field):
    error = assert_error_shape(raw_post(api(system), "/api/processes/", body), 400)
    assert error["code"] == "parse_error" and list(error["fields"]) == [field]
    assert field in error["message"]


def test_unknown_api_path_is_json_404(api, system, anon):
    assert_error_shape(api(system).get("/api/nothing/here/"), 404, "not_found")
    assert_error_shape(anon.post("/api/processes", {}, format="json"), 404)


def test_wrong_method_is_json_405(api, system):
    assert_error_shape(api(system).delete("/api/processes/"), 405, "method_not_allowed")
    assert_error_shape(api(system).get("/api/events/"), 405)


def test_accept_header_is_ignored_json_is_answered(api, system):
    response = api(system).get("/api/processes/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


def test_unhandled_error_under_api_is_json_500():
    request = RequestFactory().get("/api/processes/")
    middleware = ApiErrorMiddleware(lambda r: HttpResponse("ok"))
    response = middleware.process_exception(request, RuntimeError("boom"))
    assert response.status_code == 500
    assert json.loads(response.content)["error"]["code"] == "server_error"


def test_django_html_errors_under_api_become_json():
    request = RequestFactory().get("/api/x/")
    middleware = ApiErrorMiddleware(lambda r: HttpResponse("<h1>Bad</h1>", status=400))
    response = middleware(request)
    assert response.status_code == 400
    assert json.loads(response.content)["error"]["code"] == "bad_request"


def test_middleware_leaves_other_paths_alone():
    request = RequestFactory().get("/inbox/")
    middleware = ApiErrorMiddleware(lambda r: HttpResponse("<h1>x</h1>", status=404))
    assert middleware(request).content == b"<h1>x</h1>"
    assert middleware.process_exception(request, RuntimeError()) is None


# --- Idempotency-Key ------------------------------------------------------------------------------


def test_retry_with_the_same_key_returns_the_first_answer(api, system):
    client = api(system)
    first = client.post("/api/processes/", START, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == 201
    # the instance is cancelled meanwhile: a fresh start would create a new one
    client.post(f"/api/processes/{first.json()['id']}/cancel/", {}, format="json")
    again = client.post("/api/processes/", START, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again["Location"] == first["Location"]
    assert again["Idempotent-Replayed"] == "true"
    assert ProcessInstance.objects.count() == 1


def test_without_a_key_the_request_runs_again(api, system):
    client = api(system)
    first = client.post("/api/processes/", START, format="json")
    client.post(f"/api/processes/{first.json()['id']}/cancel/", {}, format="json")
    assert client.post("/api/processes/", START, format="json").status_code == 201
    assert ProcessInstance.objects.count() == 2


def test_error_answers_are_replayed_too(api, system):
    client = api(system)
    bad = {**START, "definition": "nope"}
    first = client.post("/api/processes/", bad, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    again = client.post("/api/processes/", bad, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    assert first.status_code == again.status_code == 404
    assert again.json() == first.json()


def test_same_key_with_another_body_is_422(api, system):
    client = api(system)
    client.post("/api/processes/", START, format="json", HTTP_IDEMPOTENCY_KEY="k-3")
    other = {**START, "business_key": "ORDER-002"}
    response = client.post("/api/processes/", other, format="json", HTTP_IDEMPOTENCY_KEY="k-3")
    assert_error_shape(response, 422, "idempotency_key_reused")
    assert ProcessInstance.objects.count() == 1


def test_keys_are_per_caller(api, system, pizza):
    from tests.api.conftest import grant
    from tests.factories import UserFactory

    other = UserFactory(username="other-shop")
    grant(other, pizza)
    api(system).post("/api/processes/", START, format="json", HTTP_IDEMPOTENCY_KEY="k-4")
    response = api(other).post(
        "/api/processes/", {**START, "business_key": "X"}, format="json", HTTP_IDEMPOTENCY_KEY="k-4"
    )
    assert response.status_code == 201


def test_key_in_flight_is_409(api, system):
    IdempotencyRecord.objects.create(user=system, key="k-5", fingerprint="x")
    response = api(system).post("/api/processes/", START, format="json", HTTP_IDEMPOTENCY_KEY="k-5")
    assert response.status_code in (409, 422)
    assert ProcessInstance.objects.count() == 0


def test_key_in_flight_same_request_is_409(api, system):
    client = api(system)
    client.post("/api/processes/", START, format="json", HTTP_IDEMPOTENCY_KEY="k-6")
    IdempotencyRecord.objects.filter(key="k-6").update(status=None)
    response = client.post("/api/processes/", START, format="json", HTTP_IDEMPOTENCY_KEY="k-6")
    assert_error_shape(response, 409, "conflict")


def test_key_too_long_is_400(api, system):
    response = api(system).post(
        "/api/processes/", START, format="json", HTTP_IDEMPOTENCY_KEY="k" * 256
    )
    error = assert_error_shape(response, 400)
    assert "Idempotency-Key" in error["fields"]


def test_idempotent_seed_event(api, system):
    client = api(system)
    event = {"business_ref_no": "R-1", "component_name": "ITALIAN", "event_name": "StartWorkflow"}
    first = client.post("/api/events/", event, format="json", HTTP_IDEMPOTENCY_KEY="e-1")
    again = client.post("/api/events/", event, format="json", HTTP_IDEMPOTENCY_KEY="e-1")
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
