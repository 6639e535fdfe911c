"""Write a laid-out diagram as BPMN 2.0 XML, elements in the order the XSD asks for."""

from __future__ import annotations

from lxml import etree

from processes.bpmn.layout import Layout, layout
from processes.bpmn.model import Diagram, Node
from processes.bpmn.xml import BPMN, BPMNDI, DC, DI, NSMAP, PROPERTIES, XSI, properties_text, q

EXPORTER = "Flowdesk"
EXPORTER_VERSION = "1"


def _sub(parent, namespace: str, name: str, /, **attrs) -> etree._Element:
    element = etree.SubElement(parent, q(namespace, name))
    for key, value in attrs.items():
        if value is not None:
            element.set(key, str(value))
    return element


def _head(element, documentation: str, props: dict) -> None:
    """documentation and extensionElements: the first children of every BPMN element."""
    if documentation:
        _sub(element, BPMN, "documentation").text = documentation
    if props:
        ext = _sub(element, BPMN, "extensionElements")
        etree.SubElement(ext, PROPERTIES).text = properties_text(props)


def _node(process, node: Node) -> None:
    attrs = {"id": node.id, "name": node.name or None}
    if node.tag == "callActivity":
        attrs["calledElement"] = node.called
    if node.tag == "boundaryEvent":
        attrs.update(attachedToRef=node.attached_to, cancelActivity="false")
    if node.default:
        attrs["default"] = node.default
    element = _sub(process, BPMN, node.tag, **attrs)
    _head(element, node.documentation, node.props)
    if node.timer is not None:
        definition = _sub(element, BPMN, "timerEventDefinition", id=f"{node.id}.definition")
        duration = _sub(definition, BPMN, "timeDuration")
        duration.set(q(XSI, "type"), "bpmn:tFormalExpression")
        duration.text = node.timer


def write(diagram: Diagram) -> bytes:
    """The BPMN document of ``diagram``, with diagram interchange for every element."""
    placed = layout(diagram)
    root = etree.Element(q(BPMN, "definitions"), nsmap=NSMAP)
    root.set("id", "_fd.definitions")
    root.set("targetNamespace", "urn:flowdesk:definitions")
    root.set("exporter", EXPORTER)
    root.set("exporterVersion", EXPORTER_VERSION)
    collaboration = _sub(root, BPMN, "collaboration", id="_fd.collaboration")
    _sub(
        collaboration,
        BPMN,
        "participant",
        id="_fd.pool",
        name=diagram.name or None,
        processRef=diagram.process_id,
    )
    process = _sub(
        root, BPMN, "process", id=diagram.process_id, name=diagram.name or None, isExecutable="true"
    )
    _head(process, diagram.documentation, diagram.props)
    lane_set = _sub(process, BPMN, "laneSet", id="_fd.lanes")
    for index, lane in enumerate(diagram.lanes):
        element = _sub(lane_set, BPMN, "lane", id=lane.id, name=lane.name)
        _head(element, "", lane.props)
        for node in diagram.nodes:
            if node.lane == index:
                _sub(element, BPMN, "flowNodeRef").text = node.id
    for node in diagram.nodes:
        _node(process, node)
    for flow in diagram.flows:
        element = _sub(
            process,
            BPMN,
            "sequenceFlow",
            id=flow.id,
            name=flow.name or None,
            sourceRef=flow.source,
            targetRef=flow.target,
        )
        _head(element, "", flow.props)
        if flow.condition is not None:
            expression = _sub(element, BPMN, "conditionExpression")
            expression.set(q(XSI, "type"), "bpmn:tFormalExpression")
            expression.text = flow.condition
    _interchange(root, diagram, placed)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _interchange(root, diagram: Diagram, placed: Layout) -> None:
    bpmn_diagram = _sub(root, BPMNDI, "BPMNDiagram", id="_fd.diagram")
    plane = _sub(bpmn_diagram, BPMNDI, "BPMNPlane", id="_fd.plane", bpmnElement="_fd.collaboration")

    def shape(element_id, bounds, **attrs):
        element = _sub(plane, BPMNDI, "BPMNShape", id=f"{element_id}.di", bpmnElement=element_id)
        for key, value in attrs.items():
            element.set(key, value)
        _sub(
            element,
            DC,
            "Bounds",
            x=_n(bounds.x),
            y=_n(bounds.y),
            width=_n(bounds.w),
            height=_n(bounds.h),
        )

    shape("_fd.pool", placed.pool, isHorizontal="false")
    for lane, bounds in zip(diagram.lanes, placed.lanes, strict=True):
        shape(lane.id, bounds, isHorizontal="false")
    for node in diagram.nodes:
        shape(node.id, placed.shapes[node.id])
    for flow in diagram.flows:
        edge = _sub(plane, BPMNDI, "BPMNEdge", id=f"{flow.id}.di", bpmnElement=flow.id)
        for x, y in placed.edges[flow.id]:
            _sub(edge, DI, "waypoint", x=_n(x), y=_n(y))


def _n(value: float) -> str:
    return f"{value:g}"
