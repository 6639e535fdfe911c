"""Draw a process definition as an SVG picture: stages as columns, tasks as boxes, arrows for
parent -> child dependencies, conditions written on the task they guard.

The layout is a small layered layout (Sugiyama's idea, restricted to what a spec allows): the
stages are already the columns, in ``stage_order``, and parents are always in the same stage, so
inside a stage a task's sub-column is its dependency depth and its row is ordered by the mean row
of its parents (a few sweeps of the barycentre heuristic keep arrows from crossing). It is
deterministic, needs no system binary, and stays legible for dozens of tasks.

Graphviz was considered: ``dot`` lays out general graphs better, but it is a system package that
every machine would have to install, and a spec's graph is already layered by stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from processes import spec as spec_module
from processes.models import TaskState, state_word

BOX_W = 168
BOX_H = 54
COND_H = 16  # extra height of a box that carries a condition
SUB_GAP = 42  # horizontal gap between depth sub-columns inside a stage
ROW_GAP = 22
STAGE_PAD = 22
HEADER_H = 46
EMPTY_STAGE_W = 120
MARGIN = 16
STAGE_GAP = 26  # between two stages: room for the arrow from one to the next
ROW_SPACING = 34  # between two rows of stages (a wide definition wraps)
MAX_WIDTH = 900  # wrap the stages into rows past this width (the admin's content at 1280 px)
LEGEND_H = 30
LOOP_H = 34  # the lane under the stages where rework loops run back

TYPE_LABELS = {k: k for k in ("service", "external", "human", "timer", "message")}
# A task's colour by its state; its word is TaskState's label, as on every other screen.
STATE_CLASSES = {
    TaskState.PENDING: "state-pending",
    TaskState.SCHEDULED: "state-waiting",  # for a person, a worker or an outside system
    TaskState.RUNNING: "state-running",
    TaskState.COMPLETED: "state-completed",
    TaskState.FAILED: "state-failed",
    TaskState.SKIPPED: "state-skipped",
    TaskState.CANCELLED: "state-cancelled",
}
STATE_LEGEND = [
    TaskState.COMPLETED,
    TaskState.RUNNING,
    TaskState.SCHEDULED,
    TaskState.FAILED,
    TaskState.SKIPPED,
    TaskState.CANCELLED,
    TaskState.PENDING,
]


def state_class(state: str) -> str:
    return STATE_CLASSES.get(state, f"state-{state}")


STYLE = """
.fd-diagram { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }
.fd-diagram .stage-bg { fill: #f6f8fa; stroke: #d0d7de; }
.fd-diagram .stage-title { font-size: 13px; font-weight: 600; fill: #24292f; }
.fd-diagram .stage-sub { font-size: 10px; fill: #57606a; }
.fd-diagram .task rect.box { fill: #ffffff; stroke: #57606a; stroke-width: 1.4; }
.fd-diagram .task.type-external rect.box { stroke-dasharray: 6 3; }
.fd-diagram .task.type-human rect.box { stroke: #8250df; stroke-width: 2; }
.fd-diagram .task .name { font-size: 12px; font-weight: 600; fill: #24292f; }
.fd-diagram .task .kind { font-size: 10px; fill: #57606a; }
.fd-diagram .task .condition { font-size: 10px; fill: #9a6700; font-style: italic; }
.fd-diagram .badge { font-size: 9px; font-weight: 700; fill: #ffffff; }
.fd-diagram .badge-bg { fill: #57606a; }
.fd-diagram .type-human .badge-bg { fill: #8250df; }
.fd-diagram .type-external .badge-bg { fill: #0969da; }
.fd-diagram .type-timer .badge-bg { fill: #bc4c00; } .fd-diagram .type-message .badge-bg { fill: #1a7f37; }
.fd-diagram .edge { fill: none; stroke: #57606a; stroke-width: 1.3; }
.fd-diagram .edge.conditional { stroke: #9a6700; stroke-dasharray: 4 3; }
.fd-diagram .incident-badge circle { fill: #cf222e; stroke: #fff; stroke-width: 2; }
.fd-diagram .incident-badge text { fill: #fff; font-size: 12px; font-weight: 700; }
.fd-diagram .stage-link { fill: none; stroke: #57606a; stroke-width: 2; }
.fd-diagram .arrowhead { fill: #57606a; }
.fd-diagram .edge.loop { stroke: #bc4c00; stroke-dasharray: 7 3; stroke-width: 1.6; }
.fd-diagram .loop-label { font-size: 10px; fill: #bc4c00; font-weight: 600; }
.fd-diagram .state-pending rect.box { fill: #ffffff; stroke: #8c959f; }
.fd-diagram .state-completed rect.box { fill: #dafbe1; stroke: #1a7f37; }
.fd-diagram .state-running rect.box { fill: #ddf4ff; stroke: #0969da; }
.fd-diagram .state-waiting rect.box { fill: #fff8c5; stroke: #bf8700; }
.fd-diagram .state-failed rect.box { fill: #ffebe9; stroke: #cf222e; stroke-width: 2.4; }
.fd-diagram .state-skipped rect.box { fill: #f6f8fa; stroke: #8c959f; stroke-dasharray: 2 3; }
.fd-diagram .state-cancelled rect.box { fill: #eaeef2; stroke: #6e7781; }
.fd-diagram .state-skipped .name, .fd-diagram .state-cancelled .name { fill: #6e7781; }
.fd-diagram .state-compensating rect.box { fill: #fff8c5; stroke: #bf8700; stroke-dasharray: 4 2; }
.fd-diagram .state-compensation_running rect.box { fill: #ddf4ff; stroke: #bf8700; }
.fd-diagram .state-compensated rect.box { fill: #eaeef2; stroke: #6e7781; }
.fd-diagram .state-compensation_failed rect.box { fill: #ffebe9; stroke: #cf222e; }
.fd-diagram .legend { font-size: 10px; fill: #57606a; }
"""


@dataclass
class Node:
    name: str
    stage: str
    kind: str  # service | external | human
    detail: str
    condition: str
    depth: int
    row: float = 0.0
    label: str = ""  # the spec's label, shown instead of the raw name when there is one
    x: float = 0.0
    y: float = 0.0
    h: float = BOX_H


@dataclass
class StageBox:
    name: str
    order: float
    x: float
    width: float
    columns: int
    tasks: list[str] = field(default_factory=list)
    y: float = MARGIN
    height: float = 0.0


@dataclass
class Loop:
    """A rework outcome of ``task`` that sends the process back to ``goto``."""

    task: str
    outcome: str
    goto: str
    max_rounds: int
    lane: float = 0.0  # y of its horizontal run under the stages


@dataclass
class Layout:
    nodes: dict[str, Node]
    edges: list[tuple[str, str]]
    stages: list[StageBox]
    width: float
    height: float
    loops: list[Loop] = field(default_factory=list)


def task_kind(task: spec_module.TaskSpec) -> str:
    if task.type in ("HUMAN", "TIMER", "MESSAGE"):
        return task.type.lower()
    return "external" if task.is_external else "service"


def _detail(task: spec_module.TaskSpec) -> str:
    if task.type == "HUMAN":
        return f"role {task.assigned_to}" if task.assigned_to else ""
    if task.type in ("TIMER", "MESSAGE"):  # what it waits for
        return f"msg {task.message.name}" if task.message else f"until {task.until or task.wait}"
    if task.handler:
        return task.handler
    return f"queue {task.task_queue}" if task.task_queue else "external worker"


def _depths(tasks: tuple[spec_module.TaskSpec, ...]) -> dict[str, int]:
    by_name = {t.name: t for t in tasks}
    depth: dict[str, int] = {}

    def visit(name: str, trail: frozenset) -> int:
        if name in depth:
            return depth[name]
        parents = [p for p in by_name[name].parents if p in by_name and p not in trail]
        d = 0 if not parents else 1 + max(visit(p, trail | {name}) for p in parents)
        depth[name] = d
        return d

    for t in tasks:
        visit(t.name, frozenset())
    return depth


def layout(spec: spec_module.ProcessSpec) -> Layout:
    """Place every task; deterministic for a given spec."""
    nodes: dict[str, Node] = {}
    edges: list[tuple[str, str]] = []
    stages: list[StageBox] = []
    x = MARGIN
    for stage in spec.stages:
        depth = _depths(stage.tasks)
        columns: dict[int, list[str]] = {}
        for index, task in enumerate(stage.tasks):
            node = Node(
                name=task.name,
                stage=stage.name,
                kind=task_kind(task),
                detail=_detail(task),
                condition=spec_module.describe_condition(task.condition) if task.condition else "",
                depth=depth[task.name],
                row=float(index),
                label=task.label,
            )
            if node.condition:
                node.h = BOX_H + COND_H
            nodes[task.name] = node
            columns.setdefault(node.depth, []).append(task.name)
            for parent in task.parents:
                edges.append((parent, task.name))
        parents_of = {t.name: [p for p in t.parents if p in nodes] for t in stage.tasks}
        children_of: dict[str, list[str]] = {t.name: [] for t in stage.tasks}
        for child, ps in parents_of.items():
            for p in ps:
                children_of[p].append(child)
        # Barycentre sweeps: order each sub-column by the mean row of its neighbours.
        for sweep in range(4):
            order = sorted(columns) if sweep % 2 == 0 else sorted(columns, reverse=True)
            for d in order:
                names = columns[d]
                neighbours = parents_of if sweep % 2 == 0 else children_of

                def key(name: str, neighbours=neighbours) -> tuple[float, float]:
                    linked = [nodes[n].row for n in neighbours[name]]
                    bary = sum(linked) / len(linked) if linked else nodes[name].row
                    return (bary, nodes[name].row)

                names.sort(key=key)
                for i, name in enumerate(names):
                    nodes[name].row = float(i)
        n_cols = max(columns) + 1 if columns else 0
        width = (
            2 * STAGE_PAD + n_cols * BOX_W + max(n_cols - 1, 0) * SUB_GAP
            if n_cols
            else EMPTY_STAGE_W
        )
        bottom = HEADER_H + STAGE_PAD
        for d, names in columns.items():  # positions inside the stage, placed below
            y = HEADER_H + STAGE_PAD
            for name in names:
                node = nodes[name]
                node.x = STAGE_PAD + d * (BOX_W + SUB_GAP)
                node.y = y
                y += node.h + ROW_GAP
            bottom = max(bottom, y - ROW_GAP)
        stages.append(
            StageBox(
                name=stage.name,
                order=stage.order,
                x=0,
                width=width,
                columns=n_cols,
                tasks=[t.name for t in stage.tasks],
                height=bottom + STAGE_PAD,
            )
        )
    # Stages left to right, wrapping into rows past MAX_WIDTH (a row keeps at least one stage).
    x, y, rows, row = MARGIN, MARGIN, [], []
    for box in stages:
        if row and x + box.width > MAX_WIDTH:
            rows.append(row)
            y += max(b.height for b in row) + ROW_SPACING
            x, row = MARGIN, []
        box.x, box.y = x, y
        for name in box.tasks:
            nodes[name].x += x
            nodes[name].y += y
        row.append(box)
        x += box.width + STAGE_GAP
    if row:
        rows.append(row)
    for row in rows:
        tallest = max(b.height for b in row)
        for box in row:
            box.height = tallest
    width = max((r[-1].x + r[-1].width for r in rows), default=MARGIN) + MARGIN
    height = max((r[0].y + r[0].height for r in rows), default=MARGIN + HEADER_H) + MARGIN
    loops = []
    for task in spec.tasks:
        for rework in task.rework:
            height += LOOP_H
            loops.append(
                Loop(task.name, rework.outcome, rework.goto, rework.max_rounds, lane=height - 12)
            )
    return Layout(nodes=nodes, edges=edges, stages=stages, width=width, height=height, loops=loops)


def _clip_start(text: str, limit: int) -> str:
    """Keep a condition's end (its value: "…decision = 'approve'"), where branches differ."""
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_svg(
    spec: spec_module.ProcessSpec,
    *,
    states: dict[str, str] | None = None,
    links: dict[str, str] | None = None,
    title: str = "",
    wakes: dict | None = None,
) -> str:
    """The SVG document for ``spec``; ``states`` (task name -> TaskState value) colours an
    instance, ``wakes`` (task name -> when its timer fires) says when its timers fire."""
    lay = layout(spec)
    states = states or {}
    links = links or {}
    legend = bool(states)
    total_h = lay.height + (LEGEND_H if legend else 0)
    width = max(lay.width, 640 if legend else 0)
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="fd-diagram" '
        f'width="{width:.0f}" height="{total_h:.0f}" viewBox="0 0 {width:.0f} {total_h:.0f}" '
        f'role="img" aria-label="{escape(title or spec.name, {chr(34): "&quot;"})}">',
        f"<title>{escape(title or spec.name)}</title>",
        f"<style>{STYLE}</style>",
        "<defs>"
        '<marker id="fd-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse">'
        '<path class="arrowhead" d="M 0 0 L 10 5 L 0 10 z"/></marker></defs>',
    ]
    for i, stage in enumerate(lay.stages):
        out.append(
            f'<g class="stage" data-stage="{escape(stage.name)}">'
            f'<rect class="stage-bg" x="{stage.x:.0f}" y="{stage.y:.0f}" rx="8" '
            f'width="{stage.width:.0f}" height="{stage.height:.0f}"/>'
            f'<text class="stage-title" x="{stage.x + 12:.0f}" y="{stage.y + 20:.0f}">'
            f"{i + 1}. {escape(_clip(stage.name, 24))}</text>"
            f'<text class="stage-sub" x="{stage.x + 12:.0f}" y="{stage.y + 35:.0f}">'
            f"{len(stage.tasks)} task{'s' if len(stage.tasks) != 1 else ''}</text></g>"
        )
    for before, after in zip(lay.stages, lay.stages[1:], strict=False):
        # stage n runs once stage n-1 is complete: one arrow between their headers
        if after.y == before.y:  # same row: straight across the gap
            y = before.y + 16
            d = f"M {before.x + before.width + 2:.1f} {y:.1f} L {after.x - 2:.1f} {y:.1f}"
        else:  # next row: down from the stage, across, down into the next one
            mid = after.y - ROW_SPACING / 2
            x1, x2 = before.x + before.width / 2, after.x + 40
            d = f"M {x1:.1f} {before.y + before.height + 2:.1f} V {mid:.1f} H {x2:.1f} V {after.y - 2:.1f}"
        out.append(
            f'<path class="stage-link" data-from-stage="{escape(before.name)}" '
            f'data-to-stage="{escape(after.name)}" d="{d}" '
            f'marker-end="url(#fd-arrow)"><title>{escape(before.name)} → '
            f"{escape(after.name)} (when {escape(before.name)} is complete)</title></path>"
        )
    for parent, child in lay.edges:
        a, b = lay.nodes[parent], lay.nodes[child]
        x1, y1 = a.x + BOX_W, a.y + BOX_H / 2
        x2, y2 = b.x, b.y + BOX_H / 2
        dx = max((x2 - x1) / 2, 20)
        cls = "edge conditional" if b.condition else "edge"
        out.append(
            f'<path class="{cls}" data-from="{escape(parent)}" data-to="{escape(child)}" '
            f'd="M {x1:.1f} {y1:.1f} C {x1 + dx:.1f} {y1:.1f}, {x2 - dx:.1f} {y2:.1f}, '
            f'{x2:.1f} {y2:.1f}" marker-end="url(#fd-arrow)">'
            f"<title>{escape(parent)} → {escape(child)}</title></path>"
        )
    stage_x = {stage.name: stage.x for stage in lay.stages}
    for loop in lay.loops:
        node = lay.nodes[loop.task]
        x1, y1 = node.x + BOX_W / 2, node.y + node.h
        x2 = stage_x[loop.goto] + 10  # in the stage's left padding, clear of its boxes
        top = HEADER_H + MARGIN + 4
        label = f"{loop.outcome}: back to {loop.goto} (≤ {loop.max_rounds} rounds)"
        out.append(
            f'<g class="loop" data-from="{escape(loop.task)}" data-to="{escape(loop.goto)}" '
            f'data-outcome="{escape(loop.outcome)}">'
            f'<path class="edge loop" d="M {x1:.1f} {y1:.1f} L {x1:.1f} {loop.lane:.1f} '
            f'L {x2:.1f} {loop.lane:.1f} L {x2:.1f} {top:.1f}" marker-end="url(#fd-arrow)"/>'
            f'<text class="loop-label" x="{x2 + 8:.0f}" y="{loop.lane - 5:.0f}">'
            f"{escape(label)}</text><title>{escape(label)}</title></g>"
        )
    for node in lay.nodes.values():
        state = states.get(node.name)
        word = state_word(TaskState, state) if state else ""
        classes = f"task type-{node.kind}"
        if state:
            classes += f" {state_class(state)}"
        badge = TYPE_LABELS[node.kind].upper()
        tooltip = (
            f"{node.label} — " if node.label else ""
        ) + f"{node.name} ({TYPE_LABELS[node.kind]}"
        tooltip += f", {node.detail}" if node.detail else ""
        tooltip += f", {word})" if state else ")"
        if node.name in (wakes or {}):
            tooltip += f" fires {wakes[node.name]:%Y-%m-%d %H:%M:%S} UTC"
        if node.condition:
            tooltip += f" if {node.condition}"
        body = (
            f'<rect class="box" x="{node.x:.0f}" y="{node.y:.0f}" width="{BOX_W}" '
            f'height="{node.h:.0f}" rx="{12 if node.kind == "human" else 4}"/>'
            f'<rect class="badge-bg" x="{node.x + 8:.0f}" y="{node.y + 29:.0f}" '
            f'width="54" height="14" rx="7"/>'
            f'<text class="badge" x="{node.x + 35:.0f}" y="{node.y + 39:.0f}" '
            f'text-anchor="middle">{badge}</text>'
            f'<text class="name" x="{node.x + 9:.0f}" y="{node.y + 19:.0f}">'
            f"{escape(_clip(node.label or node.name, 22))}</text>"
            f'<text class="kind" x="{node.x + 68:.0f}" y="{node.y + 40:.0f}">'
            f"{escape(_clip(word or node.detail, 15))}</text>"
        )
        if state == "failed":  # the incident, marked on its node
            body += (
                f'<g class="incident-badge"><circle cx="{node.x + BOX_W - 4:.0f}" '
                f'cy="{node.y + 4:.0f}" r="9"/><text x="{node.x + BOX_W - 4:.0f}" '
                f'y="{node.y + 8:.0f}" text-anchor="middle">!</text>'
                f"<title>incident: {escape(node.name)} failed</title></g>"
            )
        if node.condition:
            body += (
                f'<text class="condition" x="{node.x + 9:.0f}" y="{node.y + 60:.0f}">'
                f"if {escape(_clip_start(node.condition, 27))}</text>"
            )
        group = (
            f'<g class="{classes}" data-task="{escape(node.name)}">'
            f"<title>{escape(tooltip)}</title>{body}</g>"
        )
        if node.name in links:
            group = f'<a href="{escape(links[node.name])}">{group}</a>'
        out.append(group)
    if legend:
        x, y = MARGIN, lay.height + 14
        shown = STATE_LEGEND + sorted(set(states.values()) - set(STATE_LEGEND))
        for state in shown:
            label = state_word(TaskState, state)
            out.append(
                f'<g class="legend-item {state_class(state)}" data-state="{escape(state)}">'
                f'<rect class="box" x="{x}" y="{y - 9}" width="14" height="11" rx="2"/>'
                f'<text class="legend" x="{x + 18}" y="{y}">{escape(label)}</text></g>'
            )
            x += 26 + 6 * len(label)
    out.append("</svg>")
    return "".join(out)


def render_definition(definition) -> str:
    return render_svg(definition.parsed(), title=str(definition))


def render_instance(process, tasks=None, link_for=None) -> str:
    """The definition's picture with each task coloured by its state on ``process``."""
    tasks = list(tasks if tasks is not None else process.tasks.all())
    states = {t.name: t.state for t in tasks}
    links = {t.name: link_for(t) for t in tasks} if link_for else None
    wakes = {t.name: t.wake_at for t in tasks if t.type == "TIMER" and t.wake_at}
    return render_svg(
        process.definition.parsed(), states=states, links=links, title=str(process), wakes=wakes
    )
