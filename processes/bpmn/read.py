"""Read a BPMN file into a diagram: the one process, its lanes, flow nodes and sequence flows, each
task's fields from camunda:/zeebe: extensions; every element Flowdesk can't run is listed with
its id and the reason. Artifacts (annotations, groups, data objects and their associations) are
documentation and are read past.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from processes.bpmn import vendors
from processes.bpmn.model import Diagram, Flow, Lane, Node
from processes.bpmn.vendors import TIMER_OR_MESSAGE
from processes.bpmn.xml import BPMN, ZEEBE, documentation, local, namespace, q, read_properties

TASK_TYPES = {
    "userTask": "HUMAN",
    "serviceTask": "SERVICE",
    "sendTask": "SERVICE",
    "businessRuleTask": "SERVICE",
    "task": "SERVICE",
    "manualTask": "SERVICE",
    "callActivity": "PROCESS",
}
GATEWAY_TAGS = ("parallelGateway", "exclusiveGateway", "inclusiveGateway")
DOCUMENTATION_TAGS = {
    "documentation",
    "extensionElements",
    "laneSet",
    "sequenceFlow",
    "textAnnotation",
    "association",
    "group",
    "dataObject",
    "dataObjectReference",
    "dataStoreReference",
    "property",
    "ioSpecification",
}
REFUSED = {
    "scriptTask": "a script task: scripts don't run in Flowdesk; make it a service task with a "
    "handler or an external worker",
    "receiveTask": f"a receive task (it waits for a message): {TIMER_OR_MESSAGE}",
    "eventBasedGateway": f"an event-based gateway: {TIMER_OR_MESSAGE}",
    "complexGateway": "a complex gateway: not supported (parallel, exclusive and inclusive are)",
    "subProcess": "an embedded sub-process: not supported; use a call activity (a PROCESS task)",
    "transaction": "a transaction sub-process: not supported",
    "adHocSubProcess": "an ad-hoc sub-process: not supported",
}


@dataclass
class Boundary:
    id: str
    task: str
    interrupting: bool
    definitions: list[str]
    duration: str | None
    props: dict


@dataclass
class ReadResult:
    diagram: Diagram
    participant: str = ""
    types: dict[str, str] = field(default_factory=dict)  # task element id -> Flowdesk type
    native: dict[str, dict] = field(default_factory=dict)  # fields from camunda:/zeebe:
    boundaries: list[Boundary] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    stage_lanes: bool = False  # the lanes carry flowdesk:properties: they are the stages

    def problem(self, element: str, message: str) -> None:
        self.problems.append((element, message))


def _definitions(element) -> list[str]:
    return [local(c) for c in element if local(c).endswith("EventDefinition")] + [
        "eventDefinitionRef" for _ in element.findall(q(BPMN, "eventDefinitionRef"))
    ]


def _kind(definitions: list[str]) -> str:
    return definitions[0].removesuffix("EventDefinition") if definitions else ""


def _a(word: str) -> str:
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def _choose_process(root, result: ReadResult):
    processes = root.findall(q(BPMN, "process"))
    names = {}
    for collaboration in root.findall(q(BPMN, "collaboration")):
        for participant in collaboration.findall(q(BPMN, "participant")):
            names[participant.get("processRef")] = participant.get("name") or ""
        for flow in collaboration.findall(q(BPMN, "messageFlow")):
            result.problem(flow.get("id", ""), f"a message flow: {TIMER_OR_MESSAGE}")
    running = [p for p in processes if any(local(c) not in DOCUMENTATION_TAGS for c in p)]
    if not running:
        result.problem("", "no process with flow elements in this file")
        return None
    chosen = next((p for p in running if p.get("isExecutable") == "true"), running[0])
    for other in running:
        if other is not chosen:
            result.problem(
                other.get("id", ""),
                f"a second process (pool {names.get(other.get('id')) or other.get('id')!r}): "
                "Flowdesk runs one process per file",
            )
    result.participant = names.get(chosen.get("id"), "")
    return chosen


def read(root, handlers: set[str]) -> ReadResult:
    result = ReadResult(Diagram("", ""))
    process_element = _choose_process(root, result)
    if process_element is None:
        return result
    props, problem = read_properties(process_element)
    if problem:
        result.problem(process_element.get("id", ""), problem)
    diagram = result.diagram = Diagram(
        process_id=process_element.get("id", ""),
        name=process_element.get("name") or "",
        documentation=documentation(process_element),
        props=props,
    )
    forms = {}
    ext = process_element.find(q(BPMN, "extensionElements"))
    for child in [] if ext is None else ext:
        if namespace(child) == ZEEBE and local(child) == "userTaskForm":
            forms[child.get("id")] = child.text or ""
    lane_of = _lanes(process_element, result)
    for element in process_element:
        tag = local(element)
        if tag in DOCUMENTATION_TAGS and tag != "sequenceFlow":
            continue
        element_id = element.get("id") or ""
        if tag == "sequenceFlow":
            diagram.flows.append(_flow(element, result))
            continue
        node = Node(
            id=element_id,
            tag=tag,
            lane=lane_of.get(element_id, -1),
            name=element.get("name") or "",
            documentation=documentation(element),
            default=element.get("default"),
        )
        node.props, problem = read_properties(element)
        if problem:
            result.problem(element_id, problem)
        reason = _refusal(element, tag)
        if reason:
            result.problem(element_id, reason)
            continue
        if tag == "boundaryEvent":
            definitions = _definitions(element)
            duration = element.find(f".//{q(BPMN, 'timeDuration')}")
            result.boundaries.append(
                Boundary(
                    id=element_id,
                    task=element.get("attachedToRef") or "",
                    interrupting=element.get("cancelActivity", "true") != "false",
                    definitions=definitions,
                    duration=(duration.text or "").strip() if duration is not None else None,
                    props=node.props,
                )
            )
            node.attached_to = element.get("attachedToRef")
        elif tag in TASK_TYPES:
            problems = vendors.Problems()
            result.types[element_id] = TASK_TYPES[tag]
            if tag == "userTask":
                fields = vendors.user_task(element, problems, forms)
            elif tag == "callActivity":
                fields = vendors.call_activity(element, problems)
            else:
                fields = vendors.service_task(element, problems, handlers)
            if tag == "sendTask" and not (fields.get("handler") or fields.get("task_queue")):
                problems.add(f"a send task (a message): {TIMER_OR_MESSAGE}")
            if tag == "businessRuleTask" and not (
                fields.get("handler") or fields.get("task_queue")
            ):
                problems.add("a business rule task (a DMN decision): not supported")
            for message in problems:
                result.problem(element_id, message)
            result.native[element_id] = fields
        diagram.nodes.append(node)
    return result


def _refusal(element, tag: str) -> str | None:
    """Why this flow element can't run in Flowdesk, or None."""
    if tag in REFUSED:
        return REFUSED[tag]
    if element.find(q(BPMN, "multiInstanceLoopCharacteristics")) is not None or (
        element.find(q(BPMN, "standardLoopCharacteristics")) is not None
    ):
        return "a loop or multi-instance marker: not supported (a PROCESS task's for_each starts one child per item)"
    if element.get("isForCompensation") == "true":
        return "a compensation activity: not supported (a task's compensate handler is)"
    definitions = _definitions(element)
    kind = _kind(definitions)
    if tag == "startEvent":
        if kind in ("timer", "message"):
            return f"a {kind} start event: {TIMER_OR_MESSAGE}"
        if definitions:
            return f"{_a(kind)} start event: Flowdesk starts a process through its API (a plain start event)"
    elif tag == "endEvent":
        if kind == "terminate":
            return "a terminate end event: not supported (a Flowdesk process ends when its last stage does)"
        if kind in ("message",):
            return f"a message end event: {TIMER_OR_MESSAGE}"
        if definitions:
            return f"{_a(kind)} end event: not supported"
    elif tag == "intermediateCatchEvent":
        if kind in ("timer", "message"):
            return f"a {kind} catch event: {TIMER_OR_MESSAGE}"
        return f"{_a(kind or 'plain')} catch event: not supported"
    elif tag == "intermediateThrowEvent":
        if kind == "message":
            return f"a message throw event: {TIMER_OR_MESSAGE}"
        if definitions:
            return f"{_a(kind)} throw event: not supported"
    elif tag == "boundaryEvent":
        if kind not in ("timer", "message"):
            return f"{_a(kind or 'plain')} boundary event: not supported"
        if kind == "message":
            return f"a message boundary event: {TIMER_OR_MESSAGE}"
    elif tag not in TASK_TYPES and tag not in GATEWAY_TAGS:
        return f"{_a(tag)}: not supported"
    return None


def _flow(element, result: ReadResult) -> Flow:
    flow = Flow(
        id=element.get("id") or "",
        source=element.get("sourceRef") or "",
        target=element.get("targetRef") or "",
        name=element.get("name") or "",
    )
    flow.props, problem = read_properties(element)
    if problem:
        result.problem(flow.id, problem)
    expression = element.find(q(BPMN, "conditionExpression"))
    if expression is not None:
        language = expression.get("language")
        if language and language.lower() not in (
            "feel",
            "juel",
            "${}",
            "http://www.omg.org/spec/feel/20140401",
        ):
            result.problem(
                flow.id, f"a {language} script condition: use an expression (FEEL or JUEL subset)"
            )
        flow.condition = (expression.text or "").strip()
    return flow


def _lanes(process_element, result: ReadResult) -> dict[str, int]:
    """Which lane (index into diagram.lanes) each flow node is in; lanes read in order."""
    lane_of: dict[str, int] = {}
    lane_sets = process_element.findall(q(BPMN, "laneSet"))
    lanes = [lane for lane_set in lane_sets for lane in lane_set.iter(q(BPMN, "lane"))]
    for lane in lanes:
        props, problem = read_properties(lane)
        if problem:
            result.problem(lane.get("id", ""), problem)
        if props:
            result.stage_lanes = True
        if lane.find(q(BPMN, "childLaneSet")) is not None:
            continue  # a lane of lanes: its leaves hold the nodes
        result.diagram.lanes.append(
            Lane(id=lane.get("id", ""), name=lane.get("name") or "", props=props)
        )
        for ref in lane.findall(q(BPMN, "flowNodeRef")):
            lane_of[(ref.text or "").strip()] = len(result.diagram.lanes) - 1
    return lane_of
