"""Reading BPMN drawn elsewhere: Camunda 7 and 8 extensions, gateways into conditions, stages from
the diagram's order or from lanes marked as stages, loops as rework, boundary timers as
escalations, and every element Flowdesk can't run refused at its id."""

import pytest

from processes.bpmn import definition_from_bpmn
from processes.spec import ANY_HANDLER, SpecValidationError, parse

HEAD = (
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
    'xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" '
    'xmlns:flowdesk="urn:flowdesk:bpmn:1" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'id="defs" targetNamespace="http://bpmn.io/schema/bpmn">'
)


def doc(body: str, extensions: str = "") -> bytes:
    ext = f"<bpmn:extensionElements>{extensions}</bpmn:extensionElements>" if extensions else ""
    return (
        f'{HEAD}<bpmn:process id="p" name="P" isExecutable="true">{ext}{body}'
        "</bpmn:process></bpmn:definitions>"
    ).encode()


def flows(*pairs) -> str:
    out = []
    for number, pair in enumerate(pairs):
        source, target, *cond = pair
        expression = (
            f'<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{cond[0]}'
            "</bpmn:conditionExpression>"
            if cond
            else ""
        )
        out.append(
            f'<bpmn:sequenceFlow id="f{number}" sourceRef="{source}" targetRef="{target}">'
            f"{expression}</bpmn:sequenceFlow>"
        )
    return "".join(out)


def service(element_id: str) -> str:
    return f'<bpmn:serviceTask id="{element_id}" camunda:type="external" camunda:topic="q"/>'


def read(xml: bytes) -> dict:
    return definition_from_bpmn(xml, known_handlers=ANY_HANDLER)


def refused(xml: bytes) -> list[tuple[str, str]]:
    with pytest.raises(SpecValidationError) as problem:
        read(xml)
    return [(e.path, e.message) for e in problem.value.errors]


def test_stages_follow_the_diagram_order_when_lanes_dont_say():
    body = (
        '<bpmn:startEvent id="s"/>'
        + service("a")
        + '<bpmn:parallelGateway id="fork" name="Prepare"/>'
        + service("b")
        + service("c")
        + '<bpmn:parallelGateway id="join"/>'
        + service("d")
        + '<bpmn:endEvent id="e"/>'
        + flows(("s", "a"), ("a", "fork"), ("fork", "b"), ("fork", "c"), ("b", "join"),
                ("c", "join"), ("join", "d"), ("d", "e"))
    )  # fmt: skip
    data = read(doc(body))
    stages = [(s["stage_name"], [t["task_name"] for t in s["tasks"]]) for s in data["stages"]]
    assert stages == [("a", ["a"]), ("Prepare", ["b", "c"]), ("d", ["d"])]
    assert all("parent_task" not in t for s in data["stages"] for t in s["tasks"])


def test_exclusive_branches_become_conditions_and_join_again():
    body = (
        '<bpmn:startEvent id="s"/>'
        + service("check")
        + '<bpmn:exclusiveGateway id="x" default="other"/>'
        + service("big")
        + service("small")
        + '<bpmn:exclusiveGateway id="merge"/>'
        + service("after")
        + '<bpmn:endEvent id="e"/>'
        + flows(("s", "check"), ("check", "x"), ("x", "big", "${amount &gt;= 1000}"),
                ("merge", "after"), ("big", "merge"), ("small", "merge"), ("after", "e"))
        + '<bpmn:sequenceFlow id="other" sourceRef="x" targetRef="small"/>'
    )  # fmt: skip
    spec, errors = parse(read(doc(body)), known_handlers=ANY_HANDLER)
    assert errors == []
    assert spec.task("big").condition == {"var": "amount", "op": "gte", "value": 1000}
    assert spec.task("small").condition == {"not": {"var": "amount", "op": "gte", "value": 1000}}
    assert spec.task("after").condition is None  # both branches meet again
    assert spec.task("big").stage == spec.task("small").stage != spec.task("after").stage


def test_a_camunda8_user_task_with_its_embedded_form():
    form = (
        '{"components": [{"type": "text", "text": "Hello"},'
        ' {"type": "textfield", "key": "name", "label": "Name", "validate": {"required": true}},'
        ' {"type": "number", "key": "amount", "validate": {"min": 0, "max": 10}},'
        ' {"type": "select", "key": "level", "values": [{"value": "low"}, {"value": "high"}]},'
        ' {"type": "checkbox", "key": "ok"}]}'
    )
    body = (
        '<bpmn:startEvent id="s"/><bpmn:userTask id="ask"><bpmn:extensionElements>'
        '<zeebe:assignmentDefinition assignee="=request.owner" candidateGroups="sales"/>'
        '<zeebe:formDefinition formKey="camunda-forms:bpmn:form1"/>'
        '</bpmn:extensionElements></bpmn:userTask><bpmn:endEvent id="e"/>'
        + flows(("s", "ask"), ("ask", "e"))
    )
    task = read(doc(body, f'<zeebe:userTaskForm id="form1">{form}</zeebe:userTaskForm>'))["stages"][
        0
    ]["tasks"][0]
    assert (task["assigned_to"], task["assignee"]) == ("sales", "request.owner")
    assert task["form"] == [
        {"name": "name", "type": "string", "label": "Name", "required": True},
        {"name": "amount", "type": "decimal", "min": 0, "max": 10},
        {"name": "level", "type": "choice", "choices": ["low", "high"]},
        {"name": "ok", "type": "boolean"},
    ]


def test_a_camunda7_form_and_what_it_cant_say():
    body = (
        '<bpmn:startEvent id="s"/><bpmn:userTask id="ask" camunda:candidateGroups="hr">'
        "<bpmn:extensionElements><camunda:formData>"
        '<camunda:formField id="days" type="long"><camunda:validation>'
        '<camunda:constraint name="required"/><camunda:constraint name="min" config="1"/>'
        "</camunda:validation></camunda:formField>"
        '<camunda:formField id="kind" type="enum"><camunda:value id="paid" name="Paid"/>'
        '<camunda:value id="unpaid" name="Unpaid"/></camunda:formField>'
        "</camunda:formData></bpmn:extensionElements></bpmn:userTask>"
        '<bpmn:endEvent id="e"/>' + flows(("s", "ask"), ("ask", "e"))
    )
    assert read(doc(body))["stages"][0]["tasks"][0]["form"] == [
        {"name": "days", "type": "integer", "required": True, "min": 1},
        {"name": "kind", "type": "choice", "choices": ["paid", "unpaid"]},
    ]
    odd = body.replace('name="min" config="1"', 'name="validator" config="x.Y"')
    assert refused(doc(odd)) == [
        ("ask", "form field 'days': the 'validator' constraint is not supported")
    ]


def test_a_call_activity_with_its_variables():
    body = (
        '<bpmn:startEvent id="s"/><bpmn:callActivity id="child" calledElement="Payment" '
        'camunda:calledElementBinding="version" camunda:calledElementVersion="3">'
        '<bpmn:extensionElements><camunda:in source="order.total" target="amount"/>'
        '<camunda:out source="receipt" target="receipt"/></bpmn:extensionElements>'
        '</bpmn:callActivity><bpmn:endEvent id="e"/>' + flows(("s", "child"), ("child", "e"))
    )
    task = read(doc(body))["stages"][0]["tasks"][0]
    assert (task["task_type"], task["process"]) == (
        "PROCESS",
        {
            "definition": "payment",
            "version": 3,
            "input": {"amount": "order.total"},
            "output": {"receipt": "receipt"},
        },
    )


def user_task_with_timer(cancel: str, target: str = '<bpmn:endEvent id="late"/>') -> bytes:
    return doc(
        '<bpmn:startEvent id="s"/><bpmn:userTask id="ask" camunda:candidateGroups="hr"/>'
        f'<bpmn:boundaryEvent id="t" attachedToRef="ask" cancelActivity="{cancel}">'
        "<bpmn:extensionElements>"
        '<flowdesk:properties>{"to": "directors"}</flowdesk:properties>'
        "</bpmn:extensionElements>"
        '<bpmn:timerEventDefinition><bpmn:timeDuration xsi:type="bpmn:tFormalExpression">'
        "P2D</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:boundaryEvent>"
        f'{target}<bpmn:endEvent id="e"/>' + flows(("s", "ask"), ("ask", "e"), ("t", "late"))
    )


def test_a_boundary_timer_on_a_user_task_is_its_escalation():
    task = read(user_task_with_timer("false"))["stages"][0]["tasks"][0]
    assert task["escalation"] == {"after": "P2D", "to": "directors"}


@pytest.mark.parametrize(
    "xml",
    [
        user_task_with_timer("true"),  # interrupting: the task would be cancelled
        user_task_with_timer("false", '<bpmn:serviceTask id="late"/>'),  # a path of its own
    ],
)
def test_a_boundary_timer_that_does_more_is_not_supported_yet(xml):
    assert refused(xml) == [("t", "a boundary timer: not supported yet (timer/message tasks)")]


def test_a_human_outcome_back_to_a_stage_is_rework():
    body = (
        '<bpmn:startEvent id="s"/>'
        + service("draft")
        + '<bpmn:userTask id="review" camunda:candidateGroups="editors"/>'
        + '<bpmn:exclusiveGateway id="x" default="go"/>'
        + service("publish")
        + '<bpmn:endEvent id="e"/>'
        + flows(("s", "draft"), ("draft", "review"), ("review", "x"),
                ("x", "draft", '=review.decision = "redo"'), ("publish", "e"))
        + '<bpmn:sequenceFlow id="go" sourceRef="x" targetRef="publish"/>'
    )  # fmt: skip
    spec, errors = parse(read(doc(body)), known_handlers=ANY_HANDLER)
    assert errors == []
    review = spec.task("review")
    assert review.outcomes == ("redo",)
    assert (review.rework[0].goto, review.rework[0].max_rounds) == ("draft", 3)
    assert spec.task("publish").condition is None  # the loop's guard is not the way on


def test_any_other_loop_is_refused_at_its_flow():
    body = (
        '<bpmn:startEvent id="s"/>'
        + service("draft")
        + '<bpmn:exclusiveGateway id="x" default="go"/>'
        + '<bpmn:endEvent id="e"/>'
        + flows(("s", "draft"), ("draft", "x"), ("x", "draft", "${again}"))
        + '<bpmn:sequenceFlow id="go" sourceRef="x" targetRef="e"/>'
    )
    assert refused(doc(body)) == [
        (
            "f2",
            "a flow back to draft: Flowdesk loops back only on a human task's outcome (a gateway "
            'right after it, =task.decision = "outcome") to the start of a stage',
        )
    ]


def test_a_lane_names_the_role_of_a_user_task_without_groups():
    body = (
        '<bpmn:laneSet id="ls"><bpmn:lane id="l1" name="managers">'
        "<bpmn:flowNodeRef>ask</bpmn:flowNodeRef></bpmn:lane></bpmn:laneSet>"
        '<bpmn:startEvent id="s"/><bpmn:userTask id="ask"/><bpmn:endEvent id="e"/>'
        + flows(("s", "ask"), ("ask", "e"))
    )
    assert read(doc(body))["stages"][0]["tasks"][0]["assigned_to"] == "managers"


@pytest.mark.parametrize(
    "body, problem",
    [
        (
            '<bpmn:startEvent id="s"/>' + service("a") + '<bpmn:endEvent id="e"/>'
            + flows(("s", "a", "${a.b()}"), ("a", "e")),
            ("f0", "condition '${a.b()}': unexpected '('"),
        ),
        (
            '<bpmn:startEvent id="s"/><bpmn:startEvent id="s2"/>' + service("a")
            + flows(("s", "a"), ("s2", "a")),
            ("s2", "a Flowdesk process has exactly one (plain) start event"),
        ),
        (
            '<bpmn:startEvent id="s"/><bpmn:serviceTask id="a"><bpmn:extensionElements>'
            "<flowdesk:properties>{handler: x}</flowdesk:properties></bpmn:extensionElements>"
            "</bpmn:serviceTask>" + flows(("s", "a")),
            ("a", "flowdesk:properties is not valid JSON: Expecting property name enclosed in "
                  "double quotes: line 1 column 2 (char 1)"),
        ),
        (
            '<bpmn:startEvent id="s"/><bpmn:serviceTask id="a"><bpmn:extensionElements>'
            '<flowdesk:properties>{"task_name": "b"}</flowdesk:properties>'
            "</bpmn:extensionElements></bpmn:serviceTask>" + flows(("s", "a")),
            ("a", "task_name is drawn in the diagram: remove it from flowdesk:properties"),
        ),
        (
            '<bpmn:startEvent id="s"/>' + service("a") + service("lost") + flows(("s", "a")),
            ("lost", "not reachable from the start event"),
        ),
        (
            '<bpmn:startEvent id="s"/><bpmn:scriptTask id="a" scriptFormat="groovy"/>'
            + flows(("s", "a")),
            ("a", "a script task: scripts don't run in Flowdesk; make it a service task with a "
                  "handler or an external worker"),
        ),
    ],
)  # fmt: skip
def test_what_flowdesk_cannot_run_is_refused_at_its_element(body, problem):
    assert refused(doc(body)) == [problem]
