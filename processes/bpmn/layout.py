"""Diagram interchange for an exported definition: one vertical pool, one vertical lane per stage
(the columns of Flowdesk's own drawing), elements placed in layers inside their lane.

A small layered layout, as ``processes.diagram`` draws the SVG: inside a lane an element's column
is its longest chain of predecessors in that lane, its row the mean row of its predecessors
(kept free of collisions), so straight runs stay straight. Flows are orthogonal; rework loops run
back under the stages. bpmn-auto-layout (and its Python port) places one process without lanes,
so it can't draw stages as lanes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from processes.bpmn.model import GATEWAYS, Diagram, Node

SIZES = {"task": (100, 80), "gateway": (50, 50), "event": (36, 36)}
CELL_W = 160
ROW_H = 120
POOL_HEADER = 30
LANE_HEADER = 30
PAD = 30
EMPTY_LANE_W = 120
LOOP_GAP = 26
ORIGIN = (160, 80)


def kind(node: Node) -> str:
    if node.tag in GATEWAYS:
        return "gateway"
    return "event" if node.tag.endswith("Event") else "task"


@dataclass
class Bounds:
    x: float
    y: float
    w: float
    h: float

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2


@dataclass
class Layout:
    pool: Bounds
    lanes: list[Bounds]
    shapes: dict[str, Bounds] = field(default_factory=dict)
    edges: dict[str, list[tuple[float, float]]] = field(default_factory=dict)


def _order(diagram: Diagram) -> list[Node]:
    """Flow nodes in topological order of the forward flows (boundary events after their task)."""
    placed = [n for n in diagram.nodes if n.attached_to is None and not _hangs(diagram, n)]
    ids = {n.id for n in placed}
    preds: dict[str, set[str]] = {n.id: set() for n in placed}
    for flow in diagram.flows:
        if not flow.back and flow.source in ids and flow.target in ids:
            preds[flow.target].add(flow.source)
    order, done = [], set()
    while len(order) < len(placed):
        ready = [n for n in placed if n.id not in done and preds[n.id] <= done]
        if not ready:  # a cycle without a back flow: place the rest as they come
            ready = [n for n in placed if n.id not in done]
        for node in ready:
            order.append(node)
            done.add(node.id)
    return order


def _hangs(diagram: Diagram, node: Node) -> bool:
    """An end event reached only from a boundary event: drawn beside its task."""
    sources = [f.source for f in diagram.flows if f.target == node.id]
    return bool(sources) and all(diagram.node(s).attached_to for s in sources)


def layout(diagram: Diagram) -> Layout:
    nodes = _order(diagram)
    preds: dict[str, list[str]] = {n.id: [] for n in nodes}
    for flow in diagram.flows:
        if not flow.back and flow.target in preds and flow.source in preds:
            preds[flow.target].append(flow.source)
    lane_of = {n.id: n.lane for n in nodes}
    column: dict[str, int] = {}
    row: dict[str, int] = {}
    taken: dict[tuple[int, int], set[int]] = {}
    for node in nodes:
        same = [p for p in preds[node.id] if lane_of[p] == node.lane]
        column[node.id] = 1 + max((column[p] for p in same), default=-1)
        linked = [row[p] for p in preds[node.id]]
        wanted = round(sum(linked) / len(linked)) if linked else 0
        used = taken.setdefault((node.lane, column[node.id]), set())
        while wanted in used:
            wanted += 1
        used.add(wanted)
        row[node.id] = wanted
    for node in diagram.nodes:  # an escalation's end event: a row under its task
        if node.attached_to is None and node.id not in row:
            task = next(f.source for f in diagram.flows if f.target == node.id)
            host = diagram.node(diagram.node(task).attached_to)
            lane_of[node.id] = host.lane
    rows = max(row.values(), default=0) + 1
    loops = [f for f in diagram.flows if f.back]
    height = LANE_HEADER + PAD + rows * ROW_H + PAD + len(loops) * LOOP_GAP
    x, lanes = ORIGIN[0] + POOL_HEADER * 0, []
    top = ORIGIN[1] + POOL_HEADER
    lane_x: list[float] = []
    for index in range(len(diagram.lanes)):
        cols = [column[n.id] for n in nodes if n.lane == index]
        width = (max(cols) + 1) * CELL_W + 2 * PAD if cols else EMPTY_LANE_W
        lanes.append(Bounds(x, top, width, height))
        lane_x.append(x)
        x += width
    pool = Bounds(ORIGIN[0], ORIGIN[1], x - ORIGIN[0], height + POOL_HEADER)
    result = Layout(pool=pool, lanes=lanes)
    for node in nodes:
        w, h = SIZES[kind(node)]
        cell_x = lane_x[node.lane] + PAD + column[node.id] * CELL_W
        cell_y = top + LANE_HEADER + PAD + row[node.id] * ROW_H
        result.shapes[node.id] = Bounds(cell_x + (CELL_W - 40 - w) / 2, cell_y + (80 - h) / 2, w, h)
    for node in diagram.nodes:
        if node.attached_to:
            host = result.shapes[node.attached_to]
            result.shapes[node.id] = Bounds(host.x + host.w - 30, host.y + host.h - 18, 36, 36)
    for node in diagram.nodes:
        if node.id not in result.shapes:
            timer = next(f.source for f in diagram.flows if f.target == node.id)
            anchor = result.shapes[timer]
            result.shapes[node.id] = Bounds(anchor.x + 50, anchor.y + 44, 36, 36)
    loop_y = top + height - PAD
    for flow in diagram.flows:
        source, target = result.shapes[flow.source], result.shapes[flow.target]
        if flow.back:
            loop_y -= LOOP_GAP
            result.edges[flow.id] = [
                (source.cx, source.y + source.h),
                (source.cx, loop_y),
                (target.cx, loop_y),
                (target.cx, target.y + target.h),
            ]
        else:
            result.edges[flow.id] = _route(
                source, target, diagram.node(flow.source), diagram.node(flow.target)
            )
    return result


def _route(source: Bounds, target: Bounds, s: Node, t: Node) -> list[tuple[float, float]]:
    """Orthogonal waypoints from ``source`` to ``target`` (left to right)."""
    if s.attached_to:  # a boundary timer: down, then right into its end event
        return [(source.cx, source.y + source.h), (source.cx, target.cy), (target.x, target.cy)]
    if abs(source.cy - target.cy) < 1:
        return [(source.x + source.w, source.cy), (target.x, target.cy)]
    below = target.cy > source.cy
    if kind(s) == "gateway":
        return [
            (source.cx, source.y + source.h if below else source.y),
            (source.cx, target.cy),
            (target.x, target.cy),
        ]
    if kind(t) == "gateway":
        return [
            (source.x + source.w, source.cy),
            (target.cx, source.cy),
            (target.cx, target.y if below else target.y + target.h),
        ]
    middle = (source.x + source.w + target.x) / 2
    return [
        (source.x + source.w, source.cy),
        (middle, source.cy),
        (middle, target.cy),
        (target.x, target.cy),
    ]
