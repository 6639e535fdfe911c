"""A read diagram as a Flowdesk definition (the JSON the API takes).

Stages come from the lanes when they carry ``flowdesk:properties`` (Flowdesk's own export, or a
drawing that marks its lanes as stages); otherwise from the diagram's order: every element that
all paths pass through closes a stage (``start → A → fork → B, C → join → D`` gives the stages
A, B+C, D). A task's parents are the nearest tasks before it in its stage; its condition is when
the flows leading to it are taken; a flow back from a human task's outcome gateway to the start
of a stage is a rework outcome.
"""

from __future__ import annotations

import re
from typing import Any

from processes.bpmn import graph as g
from processes.bpmn import logic
from processes.bpmn.export import TASK_PREFIX, read_label, shown_label
from processes.bpmn.model import DRAWN_TASK_FIELDS, WAITING_TYPES, implied_away
from processes.bpmn.read import ReadResult
from processes.bpmn.vendors import TIMER_OR_MESSAGE
from processes.bpmn.xml import xml_safe
from processes.spec.fields import parse_iso_duration
from processes.spec.types import KEY_RE, NAME_RE

MERGED = ("process", "properties", "headers")  # a diagram's value adds to the JSON's keys
LOOP = (
    "a flow back to {target}: Flowdesk loops back only on a human task's outcome (a gateway "
    'right after it, =task.decision = "outcome") to the start of a stage'
)


def task_name(element_id: str) -> str:
    if element_id.startswith(TASK_PREFIX):
        return element_id[len(TASK_PREFIX) :]
    return re.sub(r"[^A-Za-z0-9_]", "_", element_id)[:100] or "task"


def stage_name(text: str, number: int) -> str:
    name = re.sub(r"[^A-Za-z0-9_ .:-]+", " ", text).strip(" .:-")
    name = re.sub(r"\s+", " ", name)[:100].strip()
    return name if name and NAME_RE.fullmatch(name) else f"Stage {number}"


class _Converter:
    def __init__(self, read: ReadResult):
        self.read = read
        self.diagram = read.diagram
        self.problem = read.problem
        self.nodes = {n.id: n for n in self.diagram.nodes}
        self.tasks = [n.id for n in self.diagram.nodes if n.id in read.types]
        self.names = {t: task_name(t) for t in self.tasks}
        self.escalations: dict[str, dict] = {}
        self.hung: set[str] = set()
        self.originals: dict[str, Any] = {}
        self.paths: dict[str, str] = {"": self.diagram.process_id}

    def run(self) -> dict | None:
        for name in set(self.names.values()):
            same = [t for t, n in self.names.items() if n == name]
            for element in same[1:]:
                self.problem(element, f"its task name {name!r} is also {same[0]!r}'s")
        self.boundary_timers()
        if self.read.problems:  # every element refused is listed; the rest needs them gone
            return None
        starts = [n.id for n in self.diagram.nodes if n.tag == "startEvent"]
        if len(starts) != 1:
            where = starts[1] if starts else self.diagram.process_id
            self.problem(where, "a Flowdesk process has exactly one (plain) start event")
            return None
        nodes = {
            i: n for i, n in self.nodes.items() if n.attached_to is None and i not in self.hung
        }
        flows = []
        for flow in self.diagram.flows:
            if flow.source in self.hung or self.nodes.get(flow.source, None) is None:
                if flow.source not in self.hung:
                    self.problem(flow.id, f"its source {flow.source!r} is not a flow node")
                continue
            if flow.target not in nodes:
                self.problem(flow.id, f"its target {flow.target!r} is not a flow node")
                continue
            flows.append(flow)
        if self.read.problems:
            return None
        self.graph = g.build(nodes, starts[0], flows)
        for element in self.graph.unreachable:
            self.problem(element, "not reachable from the start event")
        conditions = self.conditions()
        if self.read.problems:
            return None
        guard = g.guards(self.graph, conditions, self.originals)
        try:
            self.reach = g.reach(self.graph, guard)
        except logic.TooComplex as exc:
            self.problem(self.diagram.process_id, f"the conditions are too complex: {exc}")
            return None
        stages = self.stages()
        if stages is None or self.read.problems:
            return None
        rework = self.rework(conditions, stages)
        data = self.definition(stages, rework)
        return None if self.read.problems else data

    def boundary_timers(self) -> None:
        """A non-interrupting timer on a user task that only ends: the task's escalation."""
        for boundary in self.read.boundaries:
            host = self.nodes.get(boundary.task)
            outs = [f for f in self.diagram.flows if f.source == boundary.id]
            ends = [self.nodes.get(f.target) for f in outs]
            fits = (
                host is not None
                and host.tag == "userTask"
                and not boundary.interrupting
                and boundary.definitions == ["timerEventDefinition"]
                and boundary.duration is not None
                and all(
                    e is not None
                    and e.tag == "endEvent"
                    and all(f.source == boundary.id for f in self.diagram.flows if f.target == e.id)
                    for e in ends
                )
            )
            if not fits:
                self.problem(boundary.id, f"a boundary timer: {TIMER_OR_MESSAGE}")
                continue
            if parse_iso_duration(boundary.duration) is None:
                self.problem(boundary.id, f"timer {boundary.duration!r}: an ISO-8601 duration")
                continue
            self.escalations[host.id] = {"after": boundary.duration, **boundary.props}
            self.hung.add(boundary.id)
            self.hung.update(e.id for e in ends)

    def conditions(self) -> dict[str, Any]:
        rename = None if self.read.stage_lanes else self.form_owner_rename()
        result = {}
        for flow in [*self.graph.flows, *self.graph.back]:
            try:
                result[flow.id] = g.flow_condition(flow, rename)
            except g.ExpressionError as exc:
                self.problem(flow.id, f"condition {flow.condition!r}: {exc}")
            if result.get(flow.id) is not None and self.nodes[flow.source].tag == "parallelGateway":
                self.problem(flow.id, "a condition on a parallel gateway's flow is never evaluated")
        return result

    def form_owner_rename(self):
        """Camunda reads a form field as a process variable; Flowdesk keeps it under its task:
        ``approved`` becomes ``review.approved`` when one human task's form has it."""
        owners: dict[str, list[str]] = {}
        for element in self.tasks:
            form = self.read.native.get(element, {}).get("form") or self.nodes[element].props.get(
                "form"
            )
            for item in form if isinstance(form, list) else []:
                if isinstance(item, dict) and isinstance(item.get("name"), str):
                    owners.setdefault(item["name"], []).append(self.names[element])
        names = set(self.names.values())

        def rename(cond):
            if isinstance(cond, dict) and "var" in cond:
                head = cond["var"].split(".")[0]
                if head not in names and len(owners.get(head, [])) == 1:
                    return {**cond, "var": f"{owners[head][0]}.{cond['var']}"}
                return cond
            if isinstance(cond, dict) and len(cond) == 1:
                key, value = next(iter(cond.items()))
                return {
                    key: [rename(c) for c in value] if isinstance(value, list) else rename(value)
                }
            return cond

        return rename

    def stages(self) -> list[dict] | None:
        """[{name, order, props, tasks: [element ids], where}] in order."""
        graph = self.graph
        if self.read.stage_lanes:
            stages = []
            for index, lane in enumerate(self.diagram.lanes):
                order = lane.props.get("stage_order")
                if "stage_order" not in lane.props:
                    self.problem(
                        lane.id, "a stage lane needs its stage_order in flowdesk:properties"
                    )
                tasks = [t for t in self.tasks if self.nodes[t].lane == index]
                stages.append(
                    {
                        "name": lane.name,
                        "order": order,
                        "props": lane.props,
                        "tasks": tasks,
                        "where": lane.id,
                    }
                )
            for task in self.tasks:
                if self.nodes[task].lane < 0:
                    self.problem(task, "outside the stage lanes")
            self.stage_of = {t: i for i, s in enumerate(stages) for t in s["tasks"]}
            return stages
        chain = g.cuts(graph)
        position = {node: i for i, node in enumerate(chain)}
        groups: dict[str, list[str]] = {}
        for task in self.tasks:
            node = task
            while node not in position:
                node = graph.idom[node]
            groups.setdefault(node, []).append(task)
        stages, used = [], set()
        for head in sorted(groups, key=position.get):
            tasks = groups[head]
            node = self.nodes[head]
            text = node.name or self.nodes[tasks[0]].name or self.names[tasks[0]]
            name = stage_name(text, len(stages) + 1)
            while name in used:
                name = stage_name(f"{name[:90]} {len(stages) + 1}", len(stages) + 1)
            used.add(name)
            stages.append(
                {"name": name, "order": len(stages) + 1, "props": {}, "tasks": tasks, "where": head}
            )
        self.stage_of = {t: i for i, s in enumerate(stages) for t in s["tasks"]}
        return stages

    def rework(self, conditions, stages) -> dict[str, dict]:
        """Outcome loops per human task element: {element: {outcome: {goto, max_rounds}}}."""
        loops: dict[str, dict] = {}
        graph = self.graph
        for flow in graph.back:
            target = flow.target
            gateway = self.nodes[flow.source]
            before = graph.incoming.get(flow.source, [])
            human = before[0].source if len(before) == 1 else None
            cond = conditions.get(flow.id)
            ok = (
                gateway.tag in ("exclusiveGateway", "inclusiveGateway")
                and human is not None
                and self.read.types.get(human) == "HUMAN"
                and isinstance(cond, dict)
                and cond.get("op", "eq") == "eq"
                and cond.get("var") in (f"{self.names[human]}.decision", "decision")
                and isinstance(cond.get("value"), str)
            )
            goto = None
            if ok and self.read.stage_lanes:
                lane = self.nodes[target].lane
                goto = lane if lane >= 0 else None
            elif ok:
                later = [self.stage_of[t] for t in g.reachable(graph, target) if t in self.stage_of]
                goto = min(later) if later else None
                if goto is not None and not all(
                    g.dominates(graph, target, t) for t in stages[goto]["tasks"]
                ):
                    goto = None
            if goto is None:
                self.problem(flow.id, LOOP.format(target=target))
                continue
            options = {"goto": stages[goto]["name"]}
            if "max_rounds" in flow.props:
                options["max_rounds"] = flow.props["max_rounds"]
            loops.setdefault(human, {})[cond["value"]] = options
        return loops

    def definition(self, stages: list[dict], rework: dict) -> dict:
        diagram = self.diagram
        props = dict(diagram.props)
        data: dict = {}
        name = diagram.name or self.read.participant or diagram.process_id
        exact = props.pop("workflow_name", None)
        data["workflow_name"] = (
            exact if isinstance(exact, str) and xml_safe(exact) == name else name
        )
        key = props.pop("key", None)
        if key is None and KEY_RE.fullmatch(diagram.process_id.lower()):
            key = diagram.process_id.lower()
        if key is not None:
            data["key"] = key
        exact = props.pop("description", None)
        description = diagram.documentation
        if isinstance(exact, str) and xml_safe(exact) == description:
            description = exact
        if description:
            data["description"] = description
        for drawn in ("name", "stages"):
            if drawn in props:
                self.problem(
                    diagram.process_id,
                    f"{drawn} is drawn in the diagram: remove it from flowdesk:properties",
                )
        data.update({k: v for k, v in props.items() if k not in ("name", "stages")})
        data["stages"] = []
        for index, stage in enumerate(stages):
            raw = {"stage_name": stage["name"]}
            raw.update(
                {k: v for k, v in stage["props"].items() if k not in ("stage_name", "tasks")}
            )
            raw.setdefault("stage_order", stage["order"])
            self.paths[f"stages[{index}]"] = stage["where"]
            tasks = []
            for number, element in enumerate(stage["tasks"]):
                self.paths[f"stages[{index}].tasks[{number}]"] = element
                tasks.append(self.task(element, index, rework.get(element, {})))
            if tasks:
                raw["tasks"] = tasks
            data["stages"].append(raw)
        return data

    def stage_tasks(self, stage: int) -> set[str]:
        return {t for t, s in self.stage_of.items() if s == stage}

    def upstream(self, element: str) -> set[str]:
        """Every task before ``element`` on the forward flows."""
        if not hasattr(self, "_upstream"):
            self._upstream: dict[str, set[str]] = {}
            for node in self.graph.order:
                found: set[str] = set()
                for before in self.graph.predecessors(node):
                    found |= self._upstream[before]
                    if before in self.read.types:
                        found.add(before)
                self._upstream[node] = found
        return self._upstream[element]

    def task(self, element: str, stage: int, loops: dict) -> dict:
        """The task of ``element``: its type is its tag's (a plain task may say it waits)."""
        node = self.nodes[element]
        name = self.names[element]
        props = dict(node.props)
        kind = self.read.types[element]
        spelled = props.pop("task_type", None)
        fields: dict = {
            "task_name": name,
            "task_type": spelled
            if isinstance(spelled, str)
            and (
                spelled.upper() == kind or (kind == "SERVICE" and spelled.upper() in WAITING_TYPES)
            )
            else kind,
        }
        before = g.tasks_before(self.graph, element, lambda n: n in self.read.types)
        parents = []
        for other in sorted(before, key=self.tasks.index):
            if self.stage_of[other] == stage:
                parents.append(other)
            elif self.stage_of[other] > stage:
                self.problem(element, f"it follows {other!r}, a task of a later stage")
        parents = [self.names[p] for p in implied_away(parents, self.upstream)]
        spelled = props.pop("parent_task", None)
        listed = [spelled] if isinstance(spelled, str) else spelled
        by_name = {n: t for t, n in self.names.items()}
        if (
            isinstance(listed, list)
            and all(
                isinstance(p, str) and by_name.get(p) in self.stage_tasks(stage) for p in listed
            )
            and sorted(
                self.names[p] for p in implied_away([by_name[x] for x in listed], self.upstream)
            )
            == sorted(parents)
        ):
            fields["parent_task"] = spelled  # as the file wrote it, when it says the same
        elif parents:
            fields["parent_task"] = parents
        exact = props.pop("label", None)
        if isinstance(exact, str) and shown_label(exact, name) == node.name:
            label = exact
        else:
            label = read_label(node.name, name)
        if label:
            fields["label"] = label
        exact = props.pop("description", None)
        description = node.documentation
        if isinstance(exact, str) and xml_safe(exact) == description:
            description = exact
        if description:
            fields["description"] = description
        reach = self.reach[element]
        if reach == logic.FALSE:
            self.problem(element, "never runs: the conditions on the way to it can't all hold")
        cond = logic.to_condition(reach, self.originals)
        if cond is not None:
            fields["condition"] = cond
        for drawn in DRAWN_TASK_FIELDS:
            if drawn in props:
                self.problem(
                    element, f"{drawn} is drawn in the diagram: remove it from flowdesk:properties"
                )
        fields.update({k: v for k, v in props.items() if k not in DRAWN_TASK_FIELDS})
        for key, value in self.read.native.get(element, {}).items():
            if key in MERGED and isinstance(fields.get(key), dict) and isinstance(value, dict):
                value = {**fields[key], **value}
            fields[key] = value
        if element in self.escalations:
            fields["escalation"] = self.escalations[element]
        lane = node.lane
        if (
            fields["task_type"] == "HUMAN"
            and "assigned_to" not in fields
            and not self.read.stage_lanes
            and lane >= 0
            and NAME_RE.fullmatch(self.diagram.lanes[lane].name)
        ):
            fields["assigned_to"] = self.diagram.lanes[lane].name  # the lane is the role
        if loops:
            outcomes = fields.get("outcomes")
            if isinstance(outcomes, list):
                outcomes = {o: {} for o in outcomes}
            outcomes = dict(outcomes) if isinstance(outcomes, dict) else {}
            for outcome, options in loops.items():
                current = outcomes.get(outcome)
                outcomes[outcome] = {**(current if isinstance(current, dict) else {}), **options}
            fields["outcomes"] = outcomes
        return fields


def convert(read: ReadResult) -> tuple[dict | None, dict[str, str]]:
    """The definition and where each of its JSON paths is in the diagram (element ids)."""
    converter = _Converter(read)
    data = converter.run()
    return data, converter.paths
