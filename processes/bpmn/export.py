"""A definition as a BPMN diagram: stages as lanes, tasks as user/service tasks and call
activities, parents as sequence flows through parallel gateways, a condition as an exclusive
gateway that runs the task or passes it by, a rework outcome as a flow back to its stage, an
escalation as a non-interrupting boundary timer.

Everything the diagram can't say (handler, retry, form, ... and fields added later) travels in
each element's ``flowdesk:properties``; so does a value the diagram can only show approximately
(a label with characters XML can't hold, a condition outside the FEEL subset), which the reader
takes back while the diagram still shows what it says.
"""

from __future__ import annotations

import datetime as dt
import re

from processes import spec as spec_module
from processes.bpmn.expressions import ExpressionError, parse_expression, render_expression
from processes.bpmn.model import (
    DRAWN_TASK_FIELDS,
    TASK_TAGS,
    WAITING_TYPES,
    Diagram,
    Flow,
    Lane,
    Node,
    implied_away,
)
from processes.bpmn.xml import xml_safe

NCNAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")
PROCESS_FIELDS_DRAWN = ("stages", "workflow_name", "name", "description")
TASK_PREFIX = "_fd.task."


def task_element_id(name: str) -> str:
    """A task's element id: its name, or a prefixed one for a name that starts with a digit."""
    return name if NCNAME_RE.fullmatch(name) else TASK_PREFIX + name


def process_element_id(key: str) -> str:
    return key if NCNAME_RE.fullmatch(key) else "Process_" + re.sub(r"[^A-Za-z0-9_.-]", "_", key)


def shown_label(label: str, name: str) -> str:
    return xml_safe(label) if label else name


def read_label(shown: str, name: str) -> str:
    return "" if shown == name else shown


def condition_text(cond) -> tuple[str, bool]:
    """The FEEL text for a condition, and whether reading it back gives the same condition."""
    text = render_expression(cond)
    try:
        exact = parse_expression(text) == cond
    except ExpressionError:
        exact = False
    return text, exact


def duration_text(value) -> str:
    """An ISO-8601 duration for a timer (a number of seconds becomes ``PT{n}S``)."""
    if isinstance(value, str):
        return value
    return f"PT{value}S" if float(value) != int(value) else f"PT{int(value)}S"


def iso_duration(delta: dt.timedelta) -> str:
    return f"PT{delta.total_seconds():g}S"


class _Builder:
    def __init__(self, data: dict, spec: spec_module.ProcessSpec, key: str):
        self.data, self.spec = data, spec
        self.raw_stages = {s.get("stage_name"): s for s in data["stages"]}
        self.raw_tasks = {t["task_name"]: t for s in data["stages"] for t in (s.get("tasks") or [])}
        self.flow_count = 0
        name = data.get("workflow_name", data.get("name"))
        props = {k: v for k, v in data.items() if k not in PROCESS_FIELDS_DRAWN}
        process_id = process_element_id(key)
        if process_id in {task_element_id(name) for name in self.raw_tasks}:
            process_id = f"Process_{process_id}"  # ids are unique in a file: a task has this one
        props.pop("key", None)
        if process_id != key:
            props["key"] = key
        description = data.get("description", "")
        if xml_safe(name) != name:
            props["workflow_name"] = name
        if xml_safe(description) != description:
            props["description"] = description
        self.diagram = Diagram(
            process_id=process_id,
            name=xml_safe(name),
            documentation=xml_safe(description),
            props=props,
        )
        self.first: dict[str, str] = {}
        self.last: dict[str, str] = {}
        self.stage_entry: dict[str, str] = {}
        self._ancestors: dict[str, set[str]] = {}

    def ancestors(self, name: str) -> set[str]:
        """The tasks before ``name`` in its stage (through its parents)."""
        if name not in self._ancestors:
            found: set[str] = set()
            for parent in self.spec.task(name).parents:
                found |= {parent} | self.ancestors(parent)
            self._ancestors[name] = found
        return self._ancestors[name]

    def add(self, node: Node) -> Node:
        self.diagram.nodes.append(node)
        return node

    def flow(self, source: str, target: str, **kwargs) -> Flow:
        self.flow_count += 1
        flow = Flow(id=f"_fd.flow.{self.flow_count}", source=source, target=target, **kwargs)
        self.diagram.flows.append(flow)
        return flow

    def build(self) -> Diagram:
        spec = self.spec
        targets = {r.goto for t in spec.tasks for r in t.rework}
        for index, stage in enumerate(spec.stages):
            raw = self.raw_stages[stage.name]
            props = {k: v for k, v in raw.items() if k not in ("stage_name", "tasks")}
            self.diagram.lanes.append(Lane(id=f"_fd.stage.{index}", name=stage.name, props=props))
        self.add(Node(id="_fd.start", tag="startEvent", lane=0, name="start"))
        for index, stage in enumerate(spec.stages):
            for task in stage.tasks:
                self.task_nodes(task, index)
        previous = "_fd.start"
        for index, stage in enumerate(spec.stages):
            if stage.name in targets:  # rework loops come back in here (its lane: its stage)
                again = self.add(Node(id=f"_fd.again.{index}", tag="exclusiveGateway", lane=index))
                self.flow(previous, again.id)
                previous = again.id
                self.stage_entry[stage.name] = again.id
            if stage.tasks:
                previous = self.stage_flows(stage, index, previous)
        end = self.add(Node(id="_fd.end", tag="endEvent", lane=len(spec.stages) - 1, name="end"))
        self.flow(previous, end.id)
        for task in spec.tasks:
            for loop in task.rework:
                self.rework_flow(task, loop)
        for node in self.diagram.nodes:  # an outcome gateway goes on unless a loop is taken
            if node.id.startswith("_fd.outcome."):
                node.default = next(
                    f.id for f in self.diagram.flows if f.source == node.id and not f.back
                )
        return self.diagram

    def task_nodes(self, task: spec_module.TaskSpec, lane: int) -> None:
        """The task and the gateways around it (join, if, outcome, end-if), chained."""
        raw = self.raw_tasks[task.name]
        element_id = task_element_id(task.name)
        props = {k: v for k, v in raw.items() if k not in DRAWN_TASK_FIELDS}
        label, description = raw.get("label", ""), raw.get("description", "")
        shown = shown_label(label, task.name)
        if read_label(shown, task.name) != label:
            props["label"] = label
        if xml_safe(description) != description:
            props["description"] = description
        # The diagram draws the type and the parents; their spelling in the file (``"human"``,
        # ``"parent_task": []``, parents in another order) travels along.
        if ("task_type" in raw and raw["task_type"] != task.type) or task.type in WAITING_TYPES:
            props["task_type"] = raw["task_type"]
        stage_tasks = self.spec.stage(task.stage).tasks
        drawn = implied_away(
            [t.name for t in stage_tasks if t.name in task.parents], self.ancestors
        )
        if "parent_task" in raw and (not drawn or raw["parent_task"] != drawn):
            props["parent_task"] = raw["parent_task"]
        if task.rework:
            props["outcomes"] = _outcomes_without_loops(raw["outcomes"])
        if task.escalation is not None:
            props.pop("escalation")
        node = Node(
            id=element_id,
            tag=TASK_TAGS[task.type],
            lane=lane,
            name=shown,
            task=task.name,
            props=props,
            documentation=xml_safe(description),
            called=task.call.definition
            if task.call and NCNAME_RE.fullmatch(task.call.definition)
            else None,
        )
        chain: list[Node] = []
        if len(task.parents) > 1:
            chain.append(Node(id=f"_fd.join.{task.name}", tag="parallelGateway", lane=lane))
        if task.condition is not None:  # named with its condition: shown under the diamond
            label = _clip(spec_module.describe_condition(task.condition) + "?")
            chain.append(
                Node(id=f"_fd.if.{task.name}", tag="exclusiveGateway", lane=lane, name=label)
            )
        chain.append(node)
        if task.rework:
            chain.append(Node(id=f"_fd.outcome.{task.name}", tag="exclusiveGateway", lane=lane))
        if task.condition is not None:
            chain.append(Node(id=f"_fd.endif.{task.name}", tag="exclusiveGateway", lane=lane))
        for item in chain:
            self.add(item)
        for before, after in zip(chain, chain[1:], strict=False):
            flow = self.flow(before.id, after.id)
            if before.id.startswith("_fd.if."):
                text, exact = condition_text(task.condition)
                flow.condition = text
                if not exact:
                    flow.props = {"condition": task.condition}
        if task.condition is not None:
            skip = self.flow(f"_fd.if.{task.name}", f"_fd.endif.{task.name}", name="else")
            self.diagram.node(f"_fd.if.{task.name}").default = skip.id
        self.first[task.name], self.last[task.name] = chain[0].id, chain[-1].id
        if task.escalation is not None:
            self.escalation_nodes(task, raw["escalation"], element_id, lane)

    def escalation_nodes(self, task, raw: dict, element_id: str, lane: int) -> None:
        props = {k: v for k, v in raw.items() if k != "after"}
        timer = self.add(
            Node(
                id=f"_fd.timer.{task.name}",
                tag="boundaryEvent",
                lane=lane,
                name=_clip(f"after {duration_text(raw['after'])}"),
                attached_to=element_id,
                timer=duration_text(raw["after"]),
                props=props,
            )
        )
        to = f" to {task.escalation.to_role}" if task.escalation.to_role else ""
        end = self.add(
            Node(id=f"_fd.escalated.{task.name}", tag="endEvent", lane=lane, name=f"escalated{to}")
        )
        self.flow(timer.id, end.id)

    def stage_flows(self, stage: spec_module.StageSpec, index: int, previous: str) -> str:
        """Flows into, inside and out of one stage; returns the node the next stage follows."""
        children: dict[str, list[str]] = {t.name: [] for t in stage.tasks}
        for task in stage.tasks:
            for parent in task.parents:
                children[parent].append(task.name)
        sources = [t.name for t in stage.tasks if not t.parents]
        sinks = [t.name for t in stage.tasks if not children[t.name]]
        exits: dict[str, str] = {}
        for task in stage.tasks:
            exits[task.name] = self.last[task.name]
            if len(children[task.name]) > 1:
                fork = self.add(Node(id=f"_fd.fork.{task.name}", tag="parallelGateway", lane=index))
                self.flow(self.last[task.name], fork.id)
                exits[task.name] = fork.id
        if len(sources) > 1:
            fork = self.add(Node(id=f"_fd.stagein.{index}", tag="parallelGateway", lane=index))
            self.flow(previous, fork.id)
            previous = fork.id
        for name in sources:
            self.flow(previous, self.first[name])
        for task in stage.tasks:
            for parent in task.parents:
                self.flow(exits[parent], self.first[task.name])
        if len(sinks) == 1:
            return self.last[sinks[0]]
        join = self.add(Node(id=f"_fd.stageout.{index}", tag="parallelGateway", lane=index))
        for name in sinks:
            self.flow(self.last[name], join.id)
        return join.id

    def rework_flow(self, task: spec_module.TaskSpec, loop: spec_module.ReworkSpec) -> None:
        options = self.raw_tasks[task.name]["outcomes"][loop.outcome]
        cond = {"var": f"{task.name}.decision", "op": "eq", "value": loop.outcome}
        self.flow(
            f"_fd.outcome.{task.name}",
            self.stage_entry[loop.goto],
            name=_clip(f"{loop.outcome}: back to {loop.goto}"),
            condition=render_expression(cond),
            props={"max_rounds": options["max_rounds"]} if "max_rounds" in options else {},
            back=True,
        )


def _outcomes_without_loops(outcomes: dict) -> dict:
    """The outcomes with ``goto``/``max_rounds`` taken out: the diagram draws those loops."""
    return {
        name: {k: v for k, v in options.items() if k not in ("goto", "max_rounds")}
        if isinstance(options, dict) and "goto" in options
        else options
        for name, options in outcomes.items()
    }


def _clip(text: str, limit: int = 60) -> str:
    text = xml_safe(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def build_diagram(data: dict, key: str) -> Diagram:
    """The diagram of a stored (valid) definition, not yet laid out."""
    spec = spec_module.parse_or_raise(data, known_handlers=spec_module.ANY_HANDLER)
    return _Builder(data, spec, key).build()
