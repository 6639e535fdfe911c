"""BPMN export and import give back the definition: every shipped definition, the seed-002 pizza
template, the tutorial's example and hypothesis-generated definitions of every kind of task and
field. Every export is valid against the OMG BPMN 2.0 XSD and its diagram interchange draws
every element."""

import json

import pytest
from hypothesis import given

from processes.bpmn import bpmn_from_definition, definition_from_bpmn
from processes.bpmn.xml import BPMN, BPMNDI, parse_xml, q, schema_problems
from processes.spec import ANY_HANDLER, parse
from tests.conftest import DEFINITIONS, ROOT
from tests.processes.test_spec_schema import FAST, definitions

SHIPPED = sorted(DEFINITIONS.glob("*.json")) + sorted((ROOT / "examples").glob("*/*.json"))
DRAWN = {
    "participant",
    "lane",
    "startEvent",
    "endEvent",
    "userTask",
    "serviceTask",
    "callActivity",
    "parallelGateway",
    "exclusiveGateway",
    "boundaryEvent",
    "sequenceFlow",
}


def spec_of(data):
    spec, errors = parse(data, known_handlers=ANY_HANDLER)
    assert errors == [], errors
    return spec


def round_trip(data, key="generated"):
    xml = bpmn_from_definition(data, key)
    return xml, definition_from_bpmn(xml, known_handlers=ANY_HANDLER)


def assert_valid_and_drawn(xml: bytes):
    """Valid BPMN 2.0 (the OMG XSD), and one DI shape or edge for every element drawn."""
    root = parse_xml(xml)
    assert schema_problems(root) == []
    elements = {
        e.get("id")
        for e in root.iter()
        if isinstance(e.tag, str)
        and e.tag.startswith(f"{{{BPMN}}}")
        and e.tag.split("}")[1] in DRAWN
    }
    drawn = {e.get("bpmnElement") for e in root.iter(q(BPMNDI, "BPMNShape"), q(BPMNDI, "BPMNEdge"))}
    assert elements and elements <= drawn, elements - drawn
    for edge in root.iter(q(BPMNDI, "BPMNEdge")):
        assert len(edge) >= 2  # waypoints


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_definition_exports_and_imports_back(path):
    data = json.loads(path.read_text())
    key = spec_of(data).key
    xml, back = round_trip(data, key)
    assert_valid_and_drawn(xml)
    assert spec_of(back) == spec_of(data)


def test_the_seed_pizza_template_comes_back_as_it_was_written():
    """The seed's template, verbatim: the same JSON back (the key, derived from the component
    name before, is now written)."""
    data = json.loads((DEFINITIONS / "pizza.json").read_text())
    xml, back = round_trip(data, "italian")
    assert back == {"key": "italian", **data}
    root = parse_xml(xml)
    lanes = [lane.get("name") for lane in root.iter(q(BPMN, "lane"))]
    assert lanes == ["START", "ORDER", "PREPARE", "DELIVER"]  # the empty START stage too
    assert root.find(f".//{q(BPMN, 'userTask')}").get("id") == "deliver_food"


def test_the_salary_diagram_says_what_the_definition_does():
    data = json.loads((DEFINITIONS / "salary.json").read_text())
    root = parse_xml(bpmn_from_definition(data, "salary"))
    tags = {}
    for element in root.find(q(BPMN, "process")):
        tags.setdefault(element.tag.split("}")[1], []).append(element.get("id"))
    assert tags["serviceTask"] == ["salary_base", "bonus", "record_payout", "notify_rejection"]
    assert tags["userTask"] == ["approve_bonus"]
    timer = root.find(f".//{q(BPMN, 'boundaryEvent')}")
    assert (timer.get("attachedToRef"), timer.get("cancelActivity")) == ("approve_bonus", "false")
    assert timer.find(f".//{q(BPMN, 'timeDuration')}").text == "P2D"
    conditions = [c.text for c in root.iter(q(BPMN, "conditionExpression"))]
    assert '=approve_bonus.decision = "approve"' in conditions
    assert '=approve_bonus.decision = "rework"' in conditions  # the loop back to CALCULATE


@FAST
@given(definitions())
def test_generated_definitions_export_and_import_back(data):
    spec = spec_of(data)
    xml, back = round_trip(data, spec.key)
    assert_valid_and_drawn(xml)
    assert spec_of(back) == spec


def test_a_task_named_as_its_definition_keeps_both():
    data = {
        "workflow_name": "Payout",
        "key": "payout",
        "stages": [{"stage_name": "PAY", "stage_order": 1, "tasks": [{"task_name": "payout"}]}],
    }
    xml, back = round_trip(data, "payout")
    assert_valid_and_drawn(xml)  # one id each: the process is Process_payout
    assert spec_of(back) == spec_of(data)
