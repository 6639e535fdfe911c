"""The OpenAPI schema, the docs page, and schemathesis against a real server.

The fuzzing part starts gunicorn on a free port of 127.0.0.1, on the test database, with a
staff token and a started pizza process in it, and lets schemathesis send what the schema
allows (and what it does not): no 5xx, and every answer matches the schema (status, content
type, body). Examples per operation are few so it stays well under a minute.
"""

import json
import subprocess
import sys
import time

import httpx
import pytest
import schemathesis
from django.core.management import call_command
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import DEFINITIONS, ROOT, free_port, subprocess_env

EXPECTED_PATHS = {
    "/api/auth/token/",
    "/api/definitions/",
    "/api/definitions/schema.json",
    "/api/definitions/{key}/",
    "/api/definitions/{key}/migrations/",
    "/api/definitions/{key}/bpmn/",
    "/api/processes/",
    "/api/processes/{id}/",
    "/api/processes/batch/",
    "/api/processes/{id}/events/",
    "/api/processes/{id}/rounds/",
    "/api/processes/{id}/cancel/",
    "/api/events/",
    "/api/messages/",
    "/api/queues/{task_queue}/tasks/",
    "/api/queues/{task_queue}/lock/",
    "/api/queues/{task_queue}/tasks/{id}/extend/",
    "/api/queues/{task_queue}/tasks/{id}/unlock/",
    "/api/inbox/",
    "/api/processes/{id}/variables/",
    "/api/processes/{id}/attachments/",
    "/api/tasks/{id}/",
    "/api/tasks/{id}/claim/",
    "/api/tasks/{id}/release/",
    "/api/tasks/{id}/complete/",
    "/api/tasks/{id}/delegate/",
    "/api/incidents/",
    "/api/tasks/{id}/retry/",
    "/api/tasks/{id}/skip/",
    "/api/tasks/{id}/replay/",
    "/api/tasks/{id}/reassign/",
    "/api/tasks/{id}/attachments/",
    "/api/subscriptions/",
    "/api/subscriptions/{id}/",
    "/api/subscriptions/{id}/deliveries/",
    "/api/deliveries/{id}/replay/",
    "/api/stats/trends/",
}


# Answered without credentials: no 401.
PUBLIC = {"/api/auth/token/", "/api/definitions/schema.json"}


@pytest.mark.django_db
def test_schema_documents_every_endpoint_and_error(client):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert set(schema["paths"]) == EXPECTED_PATHS
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert {"400", "401"} <= codes or path in PUBLIC, (path, method)
            if method == "post" and path != "/api/auth/token/":
                assert {"404", "409", "413", "415"} <= codes, (path, method)
    assert "tokenAuth" in schema["components"]["securitySchemes"]


@pytest.mark.django_db
def test_docs_page_is_served_without_a_cdn(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "cdn." not in html and "unpkg" not in html


# --- schemathesis against gunicorn ----------------------------------------------------------------


@pytest.fixture(scope="module")
def api_server(django_db_setup, django_db_blocker, tmp_path_factory):
    """gunicorn on the test database, with committed data: (base_url, staff token)."""
    from rest_framework.authtoken.models import Token

    from processes import engine
    from processes.events import Actor
    from tests.factories import UserFactory

    with django_db_blocker.unblock():
        call_command("flush", interactive=False, verbosity=0)
        user = UserFactory(
            username="fuzzer", is_staff=True, is_superuser=True, roles=["delivery_executive"]
        )
        token = Token.objects.create(user=user).key
        template = json.loads((DEFINITIONS / "pizza.json").read_text())
        engine.definition_import(data=template, key="pizza", actor=Actor.system("test"))
        actor = Actor.system("test")
        engine.process_start(definition_key="pizza", business_key="ORDER-001", actor=actor)
    port = free_port()
    log = open(tmp_path_factory.mktemp("gunicorn") / "gunicorn.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--timeout",
            "60",
            # gunicorn answers over-long request lines itself (414, not JSON, before Django):
            # lift its limit so the fuzzer's long query strings reach the API.
            "--limit-request-line",
            "0",
        ],
        cwd=ROOT,
        env=subprocess_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/api/schema/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("gunicorn did not start")
            time.sleep(0.2)
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        with django_db_blocker.unblock():
            call_command("flush", interactive=False, verbosity=0)


def _schema_dict() -> dict:
    """The schema the server serves, generated in-process at collection (same code, same settings)."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    return json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(public=True)))


# schemathesis' lazy ``from_fixture`` does not run on pytest 9 (it sets ``node._nodeid``), so the
# schema is loaded up front and the live server's URL is given to each call.
schema = schemathesis.openapi.from_dict(_schema_dict())


@schema.parametrize()
@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_fuzz_no_5xx_and_answers_conform(case, api_server):
    base, token = api_server
    case.call_and_validate(
        base_url=base,
        headers={"Authorization": f"Token {token}"},
        timeout=30,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            response_headers_conformance,
        ],
    )
