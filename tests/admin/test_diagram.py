"""The SVG diagram: well-formed, one node per task, one edge per dependency, states on instances,
legible for 30 tasks."""

import xml.etree.ElementTree as ET

import pytest

from processes import diagram, engine, spec
from tests.admin.helpers import SYSTEM, start, task
from tests.factories import complete_task, definition_data

SVG = "{http://www.w3.org/2000/svg}"

pytestmark = pytest.mark.django_db


def parse(svg: str):
    root = ET.fromstring(svg)  # raises on malformed XML
    nodes = [g for g in root.iter(f"{SVG}g") if "task" in g.get("class", "").split()]
    edges = [p for p in root.iter(f"{SVG}path") if "edge" in p.get("class", "").split()]
    return root, nodes, edges


def thirty_tasks():
    """Three stages of ten tasks: chains, fan-out, fan-in, a condition, every task type."""
    stages = []
    for s in range(3):
        tasks = []
        for t in range(10):
            name = f"s{s}_t{t}"
            task_def = {"task_name": name, "handler": "flowdesk.noop"}
            if t % 4 == 1:
                task_def = {"task_name": name, "task_type": "HUMAN", "assigned_to": "managers"}
            elif t % 4 == 2:
                task_def = {"task_name": name, "task_queue": f"q{t}"}
            if t >= 3:
                task_def["parent_task"] = [f"s{s}_t{t - 3}"] + ([f"s{s}_t{t - 2}"] if t % 2 else [])
            if t == 9:
                task_def["condition"] = {"var": f"s{s}_t1.decision", "op": "eq", "value": "ok"}
            tasks.append(task_def)
        stages.append((f"STAGE_{s}", tasks))
    return definition_data("big", stages=stages)


def test_pizza_diagram_has_a_node_per_task_and_an_edge_per_dependency(pizza):
    svg = diagram.render_definition(pizza)
    root, nodes, edges = parse(svg)
    parsed = pizza.parsed()
    assert sorted(g.get("data-task") for g in nodes) == sorted(t.name for t in parsed.tasks)
    assert sorted((e.get("data-from"), e.get("data-to")) for e in edges) == [
        ("assign_executive", "confirm_delivery"),
        ("make_food", "confirm_delivery"),
    ]
    kinds = {g.get("data-task"): g.get("class") for g in nodes}
    assert "type-external" in kinds["confirm_order"]
    assert "type-human" in kinds["deliver_food"]
    # stages are columns in stage order
    stage_names = [g.get("data-stage") for g in root.iter(f"{SVG}g") if g.get("data-stage")]
    assert stage_names == ["START", "ORDER", "PREPARE", "DELIVER"]


def _boxes(root):
    out = {}
    for g in root.iter(f"{SVG}g"):
        if "task" in g.get("class", "").split():
            rect = next(r for r in g.iter(f"{SVG}rect") if r.get("class") == "box")
            x, y = float(rect.get("x")), float(rect.get("y"))
            out[g.get("data-task")] = (
                x,
                y,
                x + float(rect.get("width")),
                y + float(rect.get("height")),
            )
    return out


def test_thirty_tasks_stay_legible():
    parsed = spec.parse_or_raise(thirty_tasks(), known_handlers=None)
    svg = diagram.render_svg(parsed)
    root, nodes, edges = parse(svg)
    assert len(nodes) == 30
    assert len(edges) == sum(len(t.parents) for t in parsed.tasks)
    boxes = _boxes(root)
    names = sorted(boxes)
    for i, a in enumerate(names):  # no two boxes overlap
        for b in names[i + 1 :]:
            ax1, ay1, ax2, ay2 = boxes[a]
            bx1, by1, bx2, by2 = boxes[b]
            assert ax2 <= bx1 or bx2 <= ax1 or ay2 <= by1 or by2 <= ay1, (a, b)
    width, height = float(root.get("width")), float(root.get("height"))
    assert all(x2 <= width and y2 <= height for _, _, x2, y2 in boxes.values())
    # 15 dependency layers side by side (5 per stage), rows kept short: a scroll, not a poster
    assert width <= 15 * (diagram.BOX_W + diagram.SUB_GAP) + 3 * 60 and height < 1200
    # every parent sits left of its child; stages in reading order, wrapped into rows past
    # MAX_WIDTH (each of these stages is wider than it: one per row)
    for t in parsed.tasks:
        for p in t.parents:
            assert boxes[p][2] < boxes[t.name][0]

    def after(a, b):  # b right of a on its row, or on a row below
        return (
            boxes[a][2] < boxes[b][0]
            or max(boxes[n][3] for n in boxes if n[:2] == a[:2]) < boxes[b][1]
        )

    assert after("s0_t9", "s1_t0") and after("s1_t0", "s2_t0")
    assert "if s0_t1.decision = &#x27;ok&#x27;" in svg or "if s0_t1.decision = 'ok'" in svg
    assert diagram.render_svg(parsed) == svg  # deterministic


def test_instance_diagram_has_state_classes(pizza):
    process = start("pizza", "O-1")
    complete_task(task(process, "confirm_order"), {})
    engine.task_fail(
        task_id=task(process, "make_food").pk, actor=SYSTEM, error="oven", retryable=False
    )
    complete_task(task(process, "assign_executive"), {})
    _, nodes, edges = parse(diagram.render_instance(process))
    states = {g.get("data-task"): set(g.get("class").split()) for g in nodes}
    assert "state-completed" in states["confirm_order"]
    assert "state-failed" in states["make_food"]
    assert "state-completed" in states["assign_executive"]
    assert "state-pending" in states["confirm_delivery"]
    assert len(edges) == 2

    engine.task_skip(task_id=task(process, "make_food").pk, actor=SYSTEM, reason="no oven")
    complete_task(task(process, "confirm_delivery"), {})
    _, nodes, _ = parse(diagram.render_instance(process))
    states = {g.get("data-task"): set(g.get("class").split()) for g in nodes}
    assert "state-skipped" in states["make_food"]
    assert "state-waiting" in states["deliver_food"]  # a human task waiting for a person


def test_running_and_cancelled_states(import_definition, flaky):
    import_definition(
        definition_data("svc", stages=[("A", [{"task_name": "x", "handler": "test_admin.flaky"}])])
    )
    process = start("svc")
    engine.task_start(task_id=task(process, "x").pk, actor=SYSTEM)
    _, nodes, _ = parse(diagram.render_instance(process))
    assert "state-running" in nodes[0].get("class")
    engine.process_cancel(process_id=process.pk, actor=SYSTEM, reason="stop")
    _, nodes, _ = parse(diagram.render_instance(process))
    assert "state-cancelled" in nodes[0].get("class")


def test_names_are_escaped():
    data = definition_data(
        "esc",
        stages=[
            (
                "A",
                [
                    {
                        "task_name": "x",
                        "task_queue": "<q>&",
                        "condition": {"var": "a", "value": "<&>"},
                    }
                ],
            )
        ],
    )
    parsed = spec.parse_or_raise(data, known_handlers=None)
    svg = diagram.render_svg(parsed, title='a "quoted" <title>')
    tree = ET.fromstring(svg)  # raw "<" or "&" would not parse
    texts = " ".join("".join(node.itertext()) for node in tree.iter())
    assert "<q>&" in texts and 'a "quoted" <title>' in texts  # shown as written
    assert "<q>&" not in svg and '"quoted" <title>' not in svg  # escaped in the source


def test_stages_are_joined_by_arrows_and_tasks_show_their_labels(import_definition):
    import xml.etree.ElementTree as ET

    salary = import_definition("salary.json", key="salary")
    svg = diagram.render_definition(salary)
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    links = [
        (p.get("data-from-stage"), p.get("data-to-stage"))
        for p in root.iter(f"{ns}path")
        if p.get("class") == "stage-link"
    ]
    stages = [s.name for s in salary.parsed().stages]
    assert links == list(zip(stages, stages[1:], strict=False))
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert "Approve the bonus" in texts  # the label, not approve_bonus
    # the approve and reject branches differ where it shows: the condition's value
    conditions = [t for t in texts if t and t.startswith("if ")]
    assert any(t.endswith("'approve'") for t in conditions), conditions
    assert any(t.endswith("'reject'") for t in conditions), conditions


def test_a_failed_task_carries_an_incident_badge(pizza):
    import xml.etree.ElementTree as ET
    from types import SimpleNamespace

    from processes import engine
    from processes.events import Actor

    process = engine.process_start(
        definition_key="pizza", business_key="O-1", input={}, actor=Actor.system("t")
    ).process
    task = process.tasks.order_by("id").first()
    # the task as the page reads it once the engine failed it (that path is tested elsewhere)
    first = SimpleNamespace(name=task.name, type=task.type, state="failed")
    root = ET.fromstring(diagram.render_instance(process, [first]))
    ns = "{http://www.w3.org/2000/svg}"
    badged = [
        g.get("data-task")
        for g in root.iter(f"{ns}g")
        if g.get("data-task") and any(c.get("class") == "incident-badge" for c in g)
    ]
    assert badged == [first.name]
