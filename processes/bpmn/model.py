"""The diagram between a definition and its XML: flow nodes, sequence flows, stage lanes.

The exporter builds it from a definition, lays it out and writes it; the reader fills it from a
file. Ids Flowdesk makes contain a dot (``_fd.flow.3``), which no task name can: a task keeps its
name as its id.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# TIMER and MESSAGE tasks are plain tasks whose Flowdesk properties say what they wait for.
TASK_TAGS = {
    "HUMAN": "userTask",
    "SERVICE": "serviceTask",
    "PROCESS": "callActivity",
    "MESSAGE": "task",
    "TIMER": "task",
}
WAITING_TYPES = ("TIMER", "MESSAGE")
GATEWAYS = ("parallelGateway", "exclusiveGateway", "inclusiveGateway")
# Task fields the diagram draws (ids, element types, flows, names, documentation, timers): the
# exporter leaves them out of flowdesk:properties, the reader takes them from the diagram.
DRAWN_TASK_FIELDS = ("task_name", "task_type", "parent_task", "condition", "label", "description")


def implied_away(parents: list[str], ancestors) -> list[str]:
    """``parents`` without those already before another parent (``ancestors(name)``: the tasks
    before ``name``): a diagram draws a task's way past a skipped parent, which reads as a link to
    that parent's own parents."""
    return [p for p in parents if not any(p in ancestors(q) for q in parents if q != p)]


@dataclass
class Node:
    id: str
    tag: str  # the BPMN element: startEvent, userTask, exclusiveGateway, boundaryEvent, ...
    lane: int = 0  # the stage's column
    name: str = ""
    task: str | None = None  # the Flowdesk task this element is
    props: dict = field(default_factory=dict)  # flowdesk:properties
    documentation: str = ""
    attached_to: str | None = None  # a boundary event's task
    timer: str | None = None  # a boundary timer's ISO-8601 duration
    called: str | None = None  # a call activity's calledElement
    default: str | None = None  # a gateway's default flow


@dataclass
class Flow:
    id: str
    source: str
    target: str
    name: str = ""
    condition: str | None = None  # FEEL text
    props: dict = field(default_factory=dict)
    back: bool = False  # a rework loop: drawn under the stages, back to an earlier one


@dataclass
class Lane:
    id: str
    name: str
    props: dict = field(default_factory=dict)


@dataclass
class Diagram:
    process_id: str
    name: str
    documentation: str = ""
    props: dict = field(default_factory=dict)
    lanes: list[Lane] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    flows: list[Flow] = field(default_factory=list)

    def node(self, node_id: str) -> Node:
        return next(n for n in self.nodes if n.id == node_id)
