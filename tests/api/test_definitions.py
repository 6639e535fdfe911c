"""GET/POST /api/definitions/ and GET /api/definitions/{key}/."""

import json

import pytest

from processes.models import ProcessDefinition
from tests.api.conftest import VIEW, grant
from tests.conftest import DEFINITIONS
from tests.factories import UserFactory, definition_data

pytestmark = pytest.mark.django_db


def seed_template():
    return json.loads((DEFINITIONS / "pizza.json").read_text())


def test_import_seed_template_verbatim(api, staff):
    # when
    response = api(staff).post("/api/definitions/", seed_template(), format="json")
    # then
    assert response.status_code == 201
    assert response.json() == {"key": "italian", "version": 1, "created": True}
    assert response["Location"] == "/api/definitions/italian/"
    definition = ProcessDefinition.objects.get(key="italian")
    assert definition.component_name == "ITALIAN"
    assert definition.status == "published"


def test_import_with_key_override(api, staff):
    response = api(staff).post("/api/definitions/?key=pizza", seed_template(), format="json")
    assert response.status_code == 201
    assert response.json()["key"] == "pizza"


def test_import_identical_again_is_200_same_version(api, staff):
    api(staff).post("/api/definitions/", seed_template(), format="json")
    response = api(staff).post("/api/definitions/", seed_template(), format="json")
    assert response.status_code == 200
    assert response.json() == {"key": "italian", "version": 1, "created": False}


def test_import_changed_spec_is_new_version(api, staff):
    api(staff).post("/api/definitions/", definition_data("flow"), format="json")
    changed = definition_data("flow", description="v2")
    response = api(staff).post("/api/definitions/", changed, format="json")
    assert response.status_code == 201
    assert response.json()["version"] == 2


def test_import_invalid_lists_every_problem_with_path(api, staff):
    data = definition_data(
        "bad",
        stages=[("MAIN", [{"task_name": "a", "parent_task": ["x"], "task_type": "HUMAN"}])],
    )
    response = api(staff).post("/api/definitions/", data, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_definition"
    paths = {e["path"] for e in error["errors"]}
    assert "stages[0].tasks[0].parent_task" in paths
    assert "stages[0].tasks[0].assigned_to" in paths or any("assigned_to" in p for p in paths)
    assert set(error["fields"]) == paths
    assert not ProcessDefinition.objects.filter(key="bad").exists()


@pytest.mark.parametrize("body", [[], "text", 3, None])
def test_import_non_object_is_400(api, staff, body):
    response = api(staff).post(
        "/api/definitions/", json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 400


def test_import_needs_staff_or_model_permission(api, system):
    response = api(system).post("/api/definitions/", definition_data("x"), format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


def test_import_with_model_permission(api):
    from django.contrib.auth.models import Permission

    user = UserFactory(username="deployer")
    user.user_permissions.add(Permission.objects.get(codename="add_processdefinition"))
    response = api(user).post("/api/definitions/", definition_data("x"), format="json")
    assert response.status_code == 201


def test_list_shows_newest_published_per_key(api, staff, import_definition):
    import_definition(definition_data("flow"))
    import_definition(definition_data("flow", description="v2"))
    import_definition(definition_data("other"))
    response = api(staff).get("/api/definitions/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert [(d["key"], d["version"]) for d in body["results"]] == [("flow", 2), ("other", 1)]


def test_list_shows_only_granted_definitions(api, system, import_definition):
    import_definition(definition_data("secret"))
    keys = [d["key"] for d in api(system).get("/api/definitions/").json()["results"]]
    assert keys == ["pizza"]


def test_list_for_service_account_without_grant_is_empty(api, stranger, pizza):
    assert api(stranger).get("/api/definitions/").json()["count"] == 0


def test_grant_on_an_old_version_covers_the_key(api, import_definition):
    v1 = import_definition(definition_data("flow"))
    import_definition(definition_data("flow", description="v2"))
    user = UserFactory(username="reader")
    grant(user, v1, VIEW)
    response = api(user).get("/api/definitions/flow/")
    assert response.status_code == 200
    assert response.json()["version"] == 2


def test_global_permission_is_not_accepted(api, pizza):
    from django.contrib.auth.models import Permission

    user = UserFactory(username="global")
    user.user_permissions.add(Permission.objects.get(codename="view_process"))
    assert api(user).get("/api/definitions/pizza/").status_code == 404


def test_detail_has_spec_and_versions(api, staff, import_definition):
    import_definition(definition_data("flow"))
    import_definition(definition_data("flow", description="v2"))
    response = api(staff).get("/api/definitions/flow/")
    assert response.status_code == 200
    body = response.json()
    assert body["version"] == 2
    assert body["spec"]["description"] == "v2"
    assert [v["version"] for v in body["versions"]] == [2, 1]
    assert {v["status"] for v in body["versions"]} == {"published"}


def test_detail_unknown_is_404(api, staff):
    response = api(staff).get("/api/definitions/nope/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_detail_not_granted_is_404(api, stranger, pizza):
    assert api(stranger).get("/api/definitions/pizza/").status_code == 404


def test_the_definition_language_is_public_json_schema(anon):
    """Editors fetch it without credentials; it validates a definition file."""
    from jsonschema import Draft202012Validator

    response = anon.get("/api/definitions/schema.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    schema = response.json()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "http://testserver/api/definitions/schema.json"
    validator = Draft202012Validator(schema)
    assert list(validator.iter_errors(seed_template())) == []
    broken = {**seed_template(), "stages": "START"}
    assert [e.json_path for e in validator.iter_errors(broken)] == ["$.stages"]


def test_a_definition_keyed_schema_json_is_still_reachable(api, staff):
    """Keys may contain dots: ``definitions/schema.json/`` (with the slash) is that definition."""
    created = api(staff).post("/api/definitions/?key=schema.json", seed_template(), format="json")
    assert created.status_code == 201
    detail = api(staff).get("/api/definitions/schema.json/")
    assert detail.status_code == 200
    assert detail.json()["key"] == "schema.json"
    assert "$schema" in api(staff).get("/api/definitions/schema.json").json()


def test_a_duration_too_large_for_a_timedelta_is_a_field_error(api, staff):
    """10**14 seconds overflows Python's timedelta: a 400 at its path, not a 500."""
    data = definition_data(
        "huge", stages=[("MAIN", [{"task_name": "a", "handler": "flowdesk.noop", "timeout": 1e14}])]
    )
    response = api(staff).post("/api/definitions/", data, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["errors"][0]["path"] == "stages[0].tasks[0].timeout"
