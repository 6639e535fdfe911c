"""The flow graph of a read diagram: loops (flows back), the order of the forward flows, the
guard of each flow, when each element runs, and which elements every path passes through (the
cuts between stages when the lanes don't say).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from processes.bpmn import logic
from processes.bpmn.expressions import ExpressionError, parse_expression, render_expression
from processes.bpmn.model import Flow, Node


@dataclass
class Graph:
    nodes: dict[str, Node]
    start: str
    flows: list[Flow]  # forward flows between graph nodes
    back: list[Flow]  # flows that close a loop
    order: list[str] = field(default_factory=list)  # topological
    incoming: dict[str, list[Flow]] = field(default_factory=dict)
    outgoing: dict[str, list[Flow]] = field(default_factory=dict)
    unreachable: list[str] = field(default_factory=list)
    idom: dict[str, str] = field(default_factory=dict)

    def predecessors(self, node_id: str) -> list[str]:
        return [f.source for f in self.incoming[node_id]]


SINK = "\x00sink"


def build(nodes: dict[str, Node], start: str, flows: list[Flow]) -> Graph:
    """Split the flows into forward and back (a depth-first walk from the start) and order."""
    out: dict[str, list[Flow]] = {n: [] for n in nodes}
    for flow in flows:
        out[flow.source].append(flow)
    state: dict[str, int] = {start: 1}
    back: set[str] = set()
    stack = [(start, iter(out[start]))]
    while stack:
        node, pending = stack[-1]
        for flow in pending:
            if state.get(flow.target) == 1:
                back.add(flow.id)
            elif flow.target not in state:
                state[flow.target] = 1
                stack.append((flow.target, iter(out[flow.target])))
                break
        else:
            state[node] = 2
            stack.pop()
    graph = Graph(
        nodes=nodes,
        start=start,
        flows=[f for f in flows if f.id not in back and f.source in state],
        back=[f for f in flows if f.id in back],
        unreachable=[n for n in nodes if n not in state],
    )
    graph.incoming = {n: [] for n in nodes}
    graph.outgoing = {n: [] for n in nodes}
    for flow in graph.flows:
        graph.incoming[flow.target].append(flow)
        graph.outgoing[flow.source].append(flow)
    waiting = {n: len(graph.incoming[n]) for n in state}
    ready = [start]
    while ready:
        node = ready.pop(0)
        graph.order.append(node)
        for flow in graph.outgoing[node]:
            waiting[flow.target] -= 1
            if waiting[flow.target] == 0:
                ready.append(flow.target)
    _dominators(graph)
    return graph


def _dominators(graph: Graph) -> None:
    """Immediate dominators over the forward flows, a virtual sink after every dead end."""
    index = {n: i for i, n in enumerate(graph.order)}
    index[SINK] = len(index)
    idom = {graph.start: graph.start}

    def intersect(a: str, b: str) -> str:
        while a != b:
            while index[a] > index[b]:
                a = idom[a]
            while index[b] > index[a]:
                b = idom[b]
        return a

    ends = [n for n in graph.order if not graph.outgoing[n]]
    for node in [*graph.order[1:], SINK]:
        preds = ends if node == SINK else graph.predecessors(node)
        preds = [p for p in preds if p in idom]
        if not preds:
            continue
        dominator = preds[0]
        for other in preds[1:]:
            dominator = intersect(dominator, other)
        idom[node] = dominator
    graph.idom = idom


def dominates(graph: Graph, a: str, b: str) -> bool:
    while True:
        if a == b:
            return True
        if b == graph.start or b not in graph.idom:
            return False
        b = graph.idom[b]


def cuts(graph: Graph) -> list[str]:
    """The elements every path from the start to an end passes through, in order."""
    chain, node = [], graph.idom.get(SINK)
    while node is not None:
        chain.append(node)
        if node == graph.start:
            break
        node = graph.idom[node]
    return chain[::-1]


def flow_condition(flow: Flow, rename=None) -> Any:
    """The flow's condition: the exact one kept in its flowdesk:properties while the diagram
    still shows it, else the expression read. Raises ExpressionError."""
    if not flow.condition:
        return None
    exact = flow.props.get("condition")
    if exact is not None:
        try:
            if render_expression(exact) == flow.condition:
                return exact
        except (KeyError, TypeError, AttributeError):
            pass
    cond = parse_expression(flow.condition)
    return rename(cond) if rename else cond


def guards(graph: Graph, conditions: dict[str, Any], originals: dict) -> dict[str, logic.Dnf]:
    """When each forward flow is taken, given its source ran."""
    result: dict[str, logic.Dnf] = {}
    for node_id, flows in graph.outgoing.items():
        node = graph.nodes[node_id]
        earlier: list[Any] = []
        for flow in flows:
            cond = conditions.get(flow.id)
            if node.tag == "parallelGateway":
                result[flow.id] = logic.TRUE
                continue
            if flow.id == node.default:
                continue
            guard = logic.TRUE if cond is None else logic.literal(cond, originals)
            if node.tag == "exclusiveGateway":  # the first true flow wins
                for before in earlier:
                    if before is None or cond is None or not logic.disjoint(cond, before):
                        guard = logic.both(guard, _not(before, originals))
                earlier.append(cond)
            elif cond is not None:
                earlier.append(cond)
            result[flow.id] = guard
        if node.default and node.default in {f.id for f in flows}:
            guard = logic.TRUE
            for before in earlier:
                guard = logic.both(guard, _not(before, originals))
            result[node.default] = guard
    return result


def _not(cond: Any, originals: dict) -> logic.Dnf:
    return logic.FALSE if cond is None else logic.negate(logic.literal(cond, originals))


def reach(graph: Graph, guard: dict[str, logic.Dnf]) -> dict[str, logic.Dnf]:
    """When each element runs: parallel joins need every branch, anything else one."""
    result = {graph.start: logic.TRUE}
    for node_id in graph.order[1:]:
        parts = [logic.both(result[f.source], guard[f.id]) for f in graph.incoming[node_id]]
        if graph.nodes[node_id].tag == "parallelGateway":
            value = logic.TRUE
            for part in parts:
                value = logic.both(value, part)
        else:
            value = logic.FALSE
            for part in parts:
                value = logic.either(value, part)
        result[node_id] = value
    return result


def tasks_before(graph: Graph, node_id: str, is_task) -> list[str]:
    """The nearest tasks upstream of ``node_id`` through gateways and events."""
    found, seen = [], set()
    stack = graph.predecessors(node_id)
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if is_task(node):
            found.append(node)
        else:
            stack.extend(graph.predecessors(node))
    return found


def reachable(graph: Graph, node_id: str) -> set[str]:
    seen, stack = set(), [node_id]
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(f.target for f in graph.outgoing[node])
    return seen


__all__ = ["ExpressionError"]
