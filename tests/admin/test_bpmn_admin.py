"""BPMN in the admin (without a browser): the import form takes a .bpmn file through the same
check as the API, a definition downloads as BPMN, its page carries the diagram for bpmn-js
with the SVG inside, an instance's page the marks of its tasks, a definition's page the count
of cases waiting at each task; a draft is saved from the modeler through the one check."""

import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from processes import bpmn
from processes.admin.bpmn import BPMN_JS_VERSION
from processes.models import DefinitionStatus, ProcessDefinition
from tests.admin.helpers import start, task
from tests.conftest import DEFINITIONS, ROOT
from tests.factories import complete_task, definition_data

pytestmark = pytest.mark.django_db

FIXTURES = ROOT / "tests" / "fixtures" / "bpmn"
ADD = "admin:processes_processdefinition_add"


def page_json(response, element_id):
    """The JSON of a json_script element of the page."""
    html = response.content.decode()
    start_tag = html.index(f'id="{element_id}"')
    body = html[html.index(">", start_tag) + 1 : html.index("</script>", start_tag)]
    return json.loads(body)


def test_the_import_form_takes_a_bpmn_file(admin_client):
    upload = SimpleUploadedFile(
        "hello.bpmn", (FIXTURES / "camunda8" / "hello-world.bpmn").read_bytes()
    )
    response = admin_client.post(reverse(ADD), {"upload": upload, "_publish": "publish"})
    definition = ProcessDefinition.objects.get(key="hello-world")
    assert response.status_code == 302
    assert definition.status == DefinitionStatus.PUBLISHED
    assert definition.parsed().task("ServiceTask_0g6tf5f").task_queue == "console-log"


def test_the_import_form_lists_every_refused_element_by_id(admin_client):
    upload = SimpleUploadedFile(
        "demo.bpmn", (FIXTURES / "camunda7" / "twitter-demo.bpmn").read_bytes()
    )
    response = admin_client.post(reverse(ADD), {"upload": upload, "_save": "save"})
    assert response.status_code == 200
    listed = response.context["spec_errors"]
    assert [e.path for e in listed] == [
        "service_task_send_rejection_notification",
        "service_task_publish_on_twitter",
        "user_task_review_tweet",
        "user_task_review_tweet",
    ]
    assert "<code>user_task_review_tweet</code>" in response.content.decode()
    assert not ProcessDefinition.objects.filter(key="twitterdemoprocess").exists()


def test_the_api_and_the_admin_refuse_a_file_alike(admin_client, api_client_for_admin):
    """One check behind both doors: the same problems, at the same elements."""
    xml = (FIXTURES / "bpmn-io" / "pizza-collaboration.bpmn").read_bytes()
    form = admin_client.post(
        reverse(ADD), {"upload": SimpleUploadedFile("p.bpmn", xml), "_save": "save"}
    )
    api = api_client_for_admin.post("/api/definitions/", data=xml, content_type="application/xml")
    assert [(e.path, e.message) for e in form.context["spec_errors"]] == [
        (e["path"], e["message"]) for e in api.json()["error"]["errors"]
    ]


@pytest.fixture
def api_client_for_admin(admin_user):
    from tests.api.conftest import client_for

    return client_for(admin_user)


def test_a_definition_downloads_as_bpmn(admin_client, import_definition):
    definition = import_definition("salary.json")
    url = reverse("admin:processes_processdefinition_download_bpmn", args=[definition.pk])
    response = admin_client.get(url)
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="salary-v1.bpmn"'
    back = bpmn.definition_from_bpmn(response.content)
    assert back == json.loads((DEFINITIONS / "salary.json").read_text())
    change = reverse("admin:processes_processdefinition_change", args=[definition.pk])
    assert url in admin_client.get(change).content.decode()  # the button


def test_a_definition_page_has_the_diagram_and_the_cases_waiting(admin_client, import_definition):
    definition = import_definition("pizza.json", key="pizza")
    for number in range(3):
        start("pizza", business_key=f"ORDER-{number}")
    complete_task(task(start("pizza", business_key="ORDER-0"), "confirm_order"))
    response = admin_client.get(
        reverse("admin:processes_processdefinition_change", args=[definition.pk])
    )
    html = response.content.decode()
    assert f"vendor/bpmn-js/{BPMN_JS_VERSION}/bpmn-navigated-viewer" in html
    assert 'class="fd-bpmn-fallback"' in html and "<svg" in html  # the page without JavaScript
    assert page_json(response, "fd-bpmn-data") == {
        "counts": {
            "confirm_order": {"waiting": 2, "failed": 0},
            "make_food": {"waiting": 1, "failed": 0},
            "assign_executive": {"waiting": 1, "failed": 0},
        }
    }
    assert "deliver_food" in page_json(response, "fd-bpmn-xml")


def test_an_instance_page_marks_each_task_by_state(admin_client, import_definition):
    import_definition("pizza.json", key="pizza")
    process = start("pizza")
    complete_task(task(process, "confirm_order"))
    response = admin_client.get(
        reverse("admin:processes_processinstance_change", args=[process.pk])
    )
    assert page_json(response, "fd-bpmn-data") == {
        "marks": {
            "_fd.start": "completed",
            "confirm_order": "completed",
            "make_food": "active",
            "assign_executive": "active",
        }
    }


def draft(import_definition, admin_user):
    from processes import engine
    from processes.events import Actor

    data = definition_data(
        "orders", stages=[("MAIN", [{"task_name": "take", "handler": "flowdesk.noop"}])]
    )
    definition, _ = engine.definition_import(
        data=data, actor=Actor.for_user(admin_user), publish=False
    )
    return definition


def test_a_draft_is_saved_from_the_modeler_through_the_bpmn_check(
    admin_client, admin_user, import_definition
):
    definition = draft(import_definition, admin_user)
    url = reverse("admin:processes_processdefinition_modeler", args=[definition.pk])
    page = admin_client.get(url)
    xml = page_json(page, "fd-bpmn-xml")
    edited = xml.replace('"handler": "flowdesk.noop"', '"handler": "flowdesk.noop", "label": "x"')
    edited = edited.replace('name="take"', 'name="Take the order"')
    response = admin_client.post(url, {"bpmn": edited})
    assert response.status_code == 302
    definition.refresh_from_db()
    assert definition.parsed().task("take").label == "Take the order"
    assert definition.status == DefinitionStatus.DRAFT
    assert definition.spec["key"] == "orders"


def test_a_refused_modeler_save_keeps_the_file_and_marks_the_elements(
    admin_client, admin_user, import_definition
):
    definition = draft(import_definition, admin_user)
    url = reverse("admin:processes_processdefinition_modeler", args=[definition.pk])
    xml = page_json(admin_client.get(url), "fd-bpmn-xml")
    broken = xml.replace('"handler": "flowdesk.noop"', '"handler": "no.such.handler"')
    response = admin_client.post(url, {"bpmn": broken})
    assert response.status_code == 200
    assert [(e.path, e.message) for e in response.context["spec_errors"]] == [
        ("take", "handler: unknown handler 'no.such.handler'")
    ]
    assert page_json(response, "fd-bpmn-errors") == ["take"]
    assert page_json(response, "fd-bpmn-xml") == broken  # nothing the person drew is lost
    definition.refresh_from_db()
    assert definition.parsed().task("take").handler == "flowdesk.noop"


def test_only_a_draft_opens_in_the_modeler(admin_client, import_definition):
    published = import_definition(definition_data("flow"))
    url = reverse("admin:processes_processdefinition_modeler", args=[published.pk])
    assert admin_client.get(url).status_code == 403
    assert admin_client.post(url, {"bpmn": "<x/>"}).status_code == 403


def test_the_vendored_bpmn_js_is_the_pinned_version_with_its_licence():
    vendored = ROOT / "static" / "vendor" / "bpmn-js"
    assert [p.name for p in vendored.iterdir()] == [BPMN_JS_VERSION]
    makefile = (ROOT / "Makefile").read_text()
    assert f"BPMN_JS_VERSION := {BPMN_JS_VERSION}" in makefile
    head = (ROOT / "templates" / "admin" / "processes" / "bpmn_head.html").read_text()
    assert head.count(f"vendor/bpmn-js/{BPMN_JS_VERSION}/") == 5
    assert "Camunda Services GmbH" in (vendored / BPMN_JS_VERSION / "LICENSE").read_text()
    assert not [p for p in Path(vendored).rglob("*") if p.suffix == ".map"]
