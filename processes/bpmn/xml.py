"""The XML side: namespaces, a safe parser (no DTD, no entities, no network), the BPMN 2.0 XSD
check, and the one Flowdesk extension element (``<flowdesk:properties>`` holding JSON).

lxml parses and writes; the OMG BPMN 2.0 schema shipped with SpiffWorkflow (a maintained BPMN
library) checks that a file is BPMN 2.0 as Camunda 7 checks it on deploy.
"""

from __future__ import annotations

import functools
import json
import re
import threading

from lxml import etree

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI = "http://www.omg.org/spec/BPMN/20100524/DI"
DC = "http://www.omg.org/spec/DD/20100524/DC"
DI = "http://www.omg.org/spec/DD/20100524/DI"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
ZEEBE = "http://camunda.org/schema/zeebe/1.0"
FLOWDESK = "urn:flowdesk:bpmn:1"
NSMAP = {
    "bpmn": BPMN,
    "bpmndi": BPMNDI,
    "dc": DC,
    "di": DI,
    "xsi": XSI,
    "flowdesk": FLOWDESK,
}
PROPERTIES = f"{{{FLOWDESK}}}properties"
MAX_BYTES = 4 * 1024 * 1024  # a BPMN file of a few hundred tasks is well under 1 MB

# Characters XML 1.0 can carry (others are replaced in what the diagram shows; the exact value
# then travels in flowdesk:properties).
XML_INVALID_RE = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class BpmnFileError(ValueError):
    """The bytes are not a BPMN 2.0 file we read; ``element`` is the id nearest the problem."""

    def __init__(self, message: str, element: str = ""):
        super().__init__(message)
        self.element = element


def q(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


def xml_safe(text: str) -> str:
    """``text`` with the characters XML can't hold replaced (and ``\\r``, which parsers fold)."""
    return XML_INVALID_RE.sub("\ufffd", text).replace("\r", "\ufffd")


def parse_xml(data: bytes | str) -> etree._Element:
    """The document's root; raises ``BpmnFileError`` for anything that isn't plain XML."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > MAX_BYTES:
        raise BpmnFileError(f"the file is larger than {MAX_BYTES // (1024 * 1024)} MB")
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise BpmnFileError(f"not well-formed XML: {exc}") from None
    if root.getroottree().docinfo.internalDTD is not None:
        raise BpmnFileError("a DOCTYPE is not allowed in a BPMN file")
    if root.tag != q(BPMN, "definitions"):
        raise BpmnFileError(
            f"not a BPMN 2.0 file: the root element is {etree.QName(root).localname!r}, "
            f"not bpmn:definitions in {BPMN}"
        )
    return root


@functools.cache
def _schema() -> etree.XMLSchema:
    from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnValidator

    return BpmnValidator().validator


_SCHEMA_LOCK = threading.Lock()  # one XMLSchema object: its error log is shared by its callers


def schema_problems(root: etree._Element, limit: int = 20) -> list[tuple[str, str]]:
    """Where the document breaks the BPMN 2.0 XSD: (nearest element id, message)."""
    with _SCHEMA_LOCK:
        schema = _schema()
        if schema.validate(root):
            return []
        errors = list(schema.error_log)[:limit]
    by_line: dict[int, str] = {}
    for element in root.iter():
        if isinstance(element.tag, str) and element.get("id") and element.sourceline:
            by_line.setdefault(element.sourceline, element.get("id"))
    problems = []
    for error in errors:
        line = error.line
        near = by_line.get(line) or next(
            (by_line[n] for n in sorted(by_line, reverse=True) if n <= line), ""
        )
        problems.append((near, f"not valid BPMN 2.0 (line {line}): {error.message}"))
    return problems


def read_properties(element: etree._Element) -> tuple[dict, str | None]:
    """The element's flowdesk:properties JSON object ({} when there is none) and a problem."""
    ext = element.find(q(BPMN, "extensionElements"))
    found = [] if ext is None else ext.findall(PROPERTIES)
    if not found:
        return {}, None
    if len(found) > 1:
        return {}, "more than one flowdesk:properties"
    text = found[0].text or ""
    if not text.strip():
        return {}, None
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        return {}, f"flowdesk:properties is not valid JSON: {exc}"
    if not isinstance(value, dict):
        return {}, "flowdesk:properties must hold a JSON object"
    return value, None


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def properties_text(props: dict) -> str:
    """JSON for a flowdesk:properties body: ASCII only, so any value is XML-safe."""
    return json.dumps(props, ensure_ascii=True)


def documentation(element: etree._Element) -> str:
    return "\n".join((d.text or "") for d in element.findall(q(BPMN, "documentation")))


def local(element: etree._Element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def namespace(element: etree._Element) -> str:
    return etree.QName(element).namespace or "" if isinstance(element.tag, str) else ""
