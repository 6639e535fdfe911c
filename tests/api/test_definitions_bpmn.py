"""BPMN 2.0 through the API: ``POST /api/definitions/`` with ``Content-Type: application/xml``
(the same 201/200/400 contract as JSON, errors naming BPMN element ids) and
``GET /api/definitions/{key}/bpmn/`` (view rights as for the definition's detail)."""

import json

import pytest

from processes import bpmn
from processes.bpmn.xml import BPMN, parse_xml, q
from processes.models import ProcessDefinition
from processes.spec import parse
from tests.api.conftest import VIEW, grant
from tests.conftest import DEFINITIONS
from tests.factories import UserFactory, definition_data

pytestmark = pytest.mark.django_db


def salary():
    return json.loads((DEFINITIONS / "salary.json").read_text())


def post_xml(client, xml, content_type="application/xml", query=""):
    return client.post(f"/api/definitions/{query}", data=xml, content_type=content_type)


def approval_bpmn(role_attribute='camunda:candidateGroups="managers"') -> bytes:
    """A Camunda 7 drawing: a user task, then a condition on its form field."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    id="Definitions_1" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="leave" name="Leave request" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:userTask id="review" name="Review the request" {role_attribute}>
      <bpmn:extensionElements>
        <camunda:formData>
          <camunda:formField id="approved" label="Approve?" type="boolean"/>
        </camunda:formData>
      </bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:exclusiveGateway id="ok" name="Approved?" default="no"/>
    <bpmn:serviceTask id="book" name="Book the leave" camunda:type="external" camunda:topic="hr"/>
    <bpmn:endEvent id="end"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="ok"/>
    <bpmn:sequenceFlow id="yes" sourceRef="ok" targetRef="book">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">${{approved}}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="no" sourceRef="ok" targetRef="end"/>
    <bpmn:sequenceFlow id="f3" sourceRef="book" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>""".encode()


def test_a_camunda_drawing_imports_as_a_definition(api, staff):
    response = post_xml(api(staff), approval_bpmn())
    assert response.status_code == 201, response.json()
    assert response.json() == {"key": "leave", "version": 1, "created": True}
    spec = ProcessDefinition.objects.get(key="leave").parsed()
    review, book = spec.task("review"), spec.task("book")
    assert (review.type, review.assigned_to, review.label) == (
        "HUMAN",
        "managers",
        "Review the request",
    )
    assert [f.name for f in review.form] == ["approved"]
    assert (book.type, book.task_queue, book.handler) == ("SERVICE", "hr", None)
    # Camunda reads the form field as a process variable; Flowdesk keeps it under its task
    assert book.condition == {"var": "review.approved", "op": "truthy"}
    # stages follow the diagram: each named after the element that opens it
    assert [s.name for s in spec.stages] == ["Review the request", "Approved"]


@pytest.mark.parametrize("content_type", ["text/xml", "application/bpmn+xml"])
def test_every_xml_content_type_is_read_as_bpmn(api, staff, content_type):
    response = post_xml(api(staff), approval_bpmn(), content_type=content_type)
    assert response.status_code == 201


def test_a_flowdesk_export_imports_back_unchanged_and_again_stores_nothing(api, staff):
    client = api(staff)
    assert client.post("/api/definitions/", salary(), format="json").status_code == 201
    xml = client.get("/api/definitions/salary/bpmn/").content
    response = post_xml(client, xml)
    assert response.status_code == 200  # identical to version 1: nothing new stored
    assert response.json() == {"key": "salary", "version": 1, "created": False}


def test_an_invalid_drawing_is_400_with_the_element_ids(api, staff):
    response = post_xml(api(staff), approval_bpmn(role_attribute='camunda:assignee="demo"'))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_definition"
    assert error["errors"] == [
        {
            "path": "review",
            "message": "assignee 'demo': Flowdesk assigns by role, or to the user named by a "
            "variable (${variable} or =variable)",
        }
    ]
    assert not ProcessDefinition.objects.filter(key="leave").exists()


def test_a_spec_problem_names_the_element_not_a_json_path(api, staff):
    response = post_xml(api(staff), approval_bpmn(role_attribute=""))
    assert response.status_code == 400
    assert response.json()["error"]["errors"] == [
        {
            "path": "review",
            "message": "assigned_to: a HUMAN task needs the role (assigned_to) that may act on it",
        }
    ]


@pytest.mark.parametrize(
    "body, message",
    [
        (b"", "not well-formed XML"),
        (b"<a><b></a>", "not well-formed XML"),
        (b'{"workflow_name": "x"}', "not well-formed XML"),
        (b"<definitions/>", "not a BPMN 2.0 file"),
        (
            b'<!DOCTYPE d [<!ENTITY e "x">]><d xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"/>',
            "a DOCTYPE is not allowed",
        ),
    ],
)
def test_what_is_not_a_bpmn_file_is_a_400(api, staff, body, message):
    response = post_xml(api(staff), body)
    assert response.status_code == 400
    errors = response.json()["error"]["errors"]
    assert len(errors) == 1 and errors[0]["path"] == ""
    assert errors[0]["message"].startswith(message)


def test_a_doctype_is_refused(api, staff):
    body = (
        b'<?xml version="1.0"?><!DOCTYPE definitions [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b'<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        b'targetNamespace="x"><process id="p">&e;</process></definitions>'
    )
    response = post_xml(api(staff), body)
    assert response.status_code == 400
    assert "DOCTYPE" in response.json()["error"]["errors"][0]["message"]


def test_importing_bpmn_needs_the_same_rights_as_json(api, stranger):
    assert post_xml(api(stranger), approval_bpmn()).status_code == 403


# --- export ---------------------------------------------------------------------------------------


def test_the_bpmn_of_a_definition_is_its_newest_published_version(api, staff, import_definition):
    import_definition(salary())
    import_definition({**salary(), "description": "v2"})
    response = api(staff).get("/api/definitions/salary/bpmn/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/xml"
    assert 'filename="salary-v2.bpmn"' in response["Content-Disposition"]
    root = parse_xml(response.content)
    assert root.find(f".//{q(BPMN, 'process')}/{q(BPMN, 'documentation')}").text == "v2"
    older = api(staff).get("/api/definitions/salary/bpmn/?version=1")
    spec, _ = parse(bpmn.definition_from_bpmn(older.content))
    assert spec == ProcessDefinition.objects.get(key="salary", version=1).parsed()


@pytest.mark.parametrize(
    "query, status", [("?version=x", 400), ("?version=9", 404), ("?version=-1", 400)]
)
def test_an_unknown_version_is_answered(api, staff, import_definition, query, status):
    import_definition(definition_data("flow"))
    response = api(staff).get(f"/api/definitions/flow/bpmn/{query}")
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"


def test_the_bpmn_is_seen_by_whoever_sees_the_definition(api, stranger, pizza):
    assert api(stranger).get("/api/definitions/pizza/bpmn/").status_code == 404
    assert api(stranger).get("/api/definitions/nope/bpmn/").status_code == 404
    viewer = UserFactory(username="reader")
    grant(viewer, pizza, VIEW)
    response = api(viewer).get("/api/definitions/pizza/bpmn/")
    assert response.status_code == 200
    assert b"deliver_food" in response.content
