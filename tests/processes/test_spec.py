"""The definition language: the seed template imports, each error kind has its path, fuzzing."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from processes import spec
from tests.conftest import DEFINITIONS
from tests.factories import definition_data


def errors_of(data, handlers=("flowdesk.noop",)):
    parsed, errors = spec.parse(data, known_handlers=handlers)
    assert (parsed is None) == bool(errors)
    return [str(e) for e in errors]


def test_seed_pizza_template_parses_unchanged():
    data = json.loads((DEFINITIONS / "pizza.json").read_text())

    parsed, errors = spec.parse(data)

    assert errors == []
    assert parsed.name == "Deliver Pizza"
    assert parsed.component_name == "ITALIAN"
    assert [s.name for s in parsed.stages] == ["START", "ORDER", "PREPARE", "DELIVER"]
    confirm = parsed.task("confirm_delivery")
    assert confirm.parents == ("make_food", "assign_executive")
    assert confirm.business_status == "FOOD ON THE WAY"
    assert confirm.is_external and confirm.task_queue == "confirm_delivery_queue"
    deliver = parsed.task("deliver_food")
    assert deliver.type == "HUMAN" and deliver.assigned_to == "delivery_executive"


def test_stages_are_sorted_by_stage_order_not_position():
    data = definition_data(
        stages=[("B", [{"task_name": "b", "handler": "flowdesk.noop"}]), ("A", [])]
    )
    data["stages"][0]["stage_order"] = 5

    parsed, errors = spec.parse(data, known_handlers=["flowdesk.noop"])

    assert errors == []
    assert [s.name for s in parsed.stages] == ["A", "B"]


def test_unknown_parent_names_its_path():
    data = definition_data(
        stages=[("S", [{"task_name": "a", "parent_task": ["x"], "handler": "flowdesk.noop"}])]
    )
    assert errors_of(data) == ["stages[0].tasks[0].parent_task: unknown task 'x'"]


def test_parent_in_another_stage_is_refused():
    data = definition_data(
        stages=[
            ("S1", [{"task_name": "a", "handler": "flowdesk.noop"}]),
            ("S2", [{"task_name": "b", "parent_task": ["a"], "handler": "flowdesk.noop"}]),
        ]
    )
    assert errors_of(data) == [
        "stages[1].tasks[0].parent_task: unknown task 'a' (it is in another stage)"
    ]


def test_cycle_is_reported():
    data = definition_data(
        stages=[
            (
                "S",
                [
                    {"task_name": "a", "parent_task": ["c"]},
                    {"task_name": "b", "parent_task": ["a"]},
                    {"task_name": "c", "parent_task": ["b"]},
                ],
            )
        ]
    )
    assert errors_of(data) == ["stages[0].tasks[0].parent_task: cycle between tasks a, b, c"]


def test_duplicate_task_and_stage_names():
    data = definition_data(stages=[("S", [{"task_name": "a"}]), ("S", [{"task_name": "a"}])])
    found = errors_of(data)
    assert "stages[1].stage_name: duplicate stage name 'S' (also stages[0])" in found
    assert (
        "stages[1].tasks[0].task_name: duplicate task name 'a' (also stages[0].tasks[0])" in found
    )


def test_bad_stage_order():
    data = definition_data(stages=[("A", [{"task_name": "a"}]), ("B", [{"task_name": "b"}])])
    data["stages"][1]["stage_order"] = 0
    data["stages"][0]["stage_order"] = 0
    assert errors_of(data) == ["stages[1].stage_order: duplicate stage_order 0 (also stages[0])"]
    data["stages"][1]["stage_order"] = "first"
    assert errors_of(data) == [
        "stages[1].stage_order: is required: a number giving the stage's position"
    ]


def test_unknown_handler():
    data = definition_data(stages=[("S", [{"task_name": "a", "handler": "nope.missing"}])])
    assert errors_of(data) == ["stages[0].tasks[0].handler: unknown handler 'nope.missing'"]


def test_bad_durations():
    data = definition_data(
        stages=[
            (
                "S",
                [
                    {
                        "task_name": "a",
                        "handler": "flowdesk.noop",
                        "timeout": "soon",
                        "retry": {"max_attempts": 3, "backoff": "P-1D"},
                    },
                    {
                        "task_name": "h",
                        "task_type": "HUMAN",
                        "assigned_to": "managers",
                        "escalation": {"after": "tomorrow", "to": "directors"},
                    },
                ],
            )
        ]
    )
    assert errors_of(data) == [
        "stages[0].tasks[0].retry.backoff: bad duration: use ISO-8601 like 'PT30S' or seconds"
        ", at most P3650D",
        "stages[0].tasks[0].timeout: bad duration: use ISO-8601 like 'PT30S' or seconds"
        ", at most P3650D",
        "stages[0].tasks[1].escalation.after: bad duration: use ISO-8601 like 'P2D' or 'PT4H'"
        ", at most P3650D",
    ]


def test_bad_condition_and_misplaced_human_fields():
    data = definition_data(
        stages=[
            (
                "S",
                [
                    {"task_name": "a", "condition": {"var": "x", "op": "matches", "value": 1}},
                    {"task_name": "b", "outcomes": ["approve"]},
                    {"task_name": "h", "task_type": "HUMAN"},
                ],
            )
        ]
    )
    assert errors_of(data) == [
        "stages[0].tasks[0].condition.op: unknown operator 'matches'; one of "
        + ", ".join(spec.CONDITION_OPS),
        "stages[0].tasks[1].outcomes: only a HUMAN task has outcomes",
        "stages[0].tasks[2].assigned_to: a HUMAN task needs the role (assigned_to) that may act on it",
    ]


def test_every_problem_is_reported_at_once():
    data = {"workflow_name": "", "stages": [{"stage_name": "S"}, 7]}
    assert errors_of(data) == [
        "workflow_name: is required: a non-empty string naming the process",
        "stages[0].stage_order: is required: a number giving the stage's position",
        "stages[1]: must be an object {stage_name, stage_order, tasks}",
    ]


def test_not_an_object():
    assert errors_of([1, 2]) == ["a definition must be a JSON object with 'stages'"]


def test_conditions_evaluate_declaratively():
    variables = {"approve_bonus": {"decision": "approve"}, "bonus": {"amount": 300}}
    rule = {
        "all": [
            {"var": "approve_bonus.decision", "op": "eq", "value": "approve"},
            {"var": "bonus.amount", "op": "gt", "value": 100},
            {"not": {"var": "missing.value", "op": "exists"}},
        ]
    }
    assert spec.evaluate_condition(rule, variables) is True
    assert (
        spec.evaluate_condition({"var": "bonus.amount", "op": "lt", "value": "x"}, variables)
        is False
    )
    assert spec.evaluate_condition({"var": "nope", "op": "ne", "value": 1}, variables) is False


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "workflow_name",
                    "stages",
                    "stage_name",
                    "stage_order",
                    "tasks",
                    "task_name",
                    "parent_task",
                    "task_type",
                    "handler",
                    "retry",
                    "timeout",
                    "condition",
                    "outcomes",
                    "form",
                    "escalation",
                    "assigned_to",
                    "var",
                    "op",
                    "value",
                    "all",
                    "any",
                    "not",
                    "max_attempts",
                    "backoff",
                    "after",
                    "name",
                    "type",
                    "key",
                    "x",
                ]
            ),
            children,
            max_size=6,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_any_json_gives_a_spec_or_errors_never_an_exception(value):
    parsed, errors = spec.parse(value, known_handlers=["flowdesk.noop"])
    assert (parsed is None) != (errors == [])
    for error in errors:
        assert isinstance(error.path, str) and error.message


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "task_name": st.sampled_from(["a", "b", "c", "d"]),
                "parent_task": st.lists(st.sampled_from(["a", "b", "c", "d", "z"]), max_size=3),
                "task_type": st.sampled_from(["SERVICE", "HUMAN", "ROBOT"]),
            }
        ),
        max_size=5,
    )
)
def test_structured_fuzz_of_tasks(tasks):
    data = {"workflow_name": "f", "stages": [{"stage_name": "S", "stage_order": 1, "tasks": tasks}]}
    parsed, errors = spec.parse(data, known_handlers=[])
    if parsed is not None:
        names = [t.name for t in parsed.tasks]
        assert len(names) == len(set(names))


def human(**fields):
    return definition_data(
        stages=[("S", [{"task_name": "ok", "task_type": "HUMAN", "assigned_to": "r", **fields}])]
    )


def test_a_human_task_declares_its_summary():
    summary = [
        {
            "label": "Bonus to approve",
            "var": "bonus.amount",
            "format": "money",
            "currency_var": "bonus.currency",
        },
        {"label": "Employee", "var": "salary_base.employee_name"},
        {"label": "Fee", "var": "fee", "format": "money", "currency": "EUR"},
    ]
    parsed = spec.parse_or_raise(human(summary=summary))
    assert parsed.task("ok").summary == (
        spec.SummaryItem("Bonus to approve", "bonus.amount", "money", None, "bonus.currency"),
        spec.SummaryItem("Employee", "salary_base.employee_name", "text"),
        spec.SummaryItem("Fee", "fee", "money", "EUR"),
    )
    assert "summary" not in parsed.task("ok").extra
    # the shipped salary definition has one: the manager sees the bonus first
    salary = json.loads((DEFINITIONS / "salary.json").read_text())
    first = spec.parse_or_raise(salary).task("approve_bonus").summary[0]
    assert (first.label, first.var, first.format) == ("Bonus to approve", "bonus.amount", "money")


def test_a_bad_summary_is_reported_item_by_item():
    data = human(
        summary=[
            {"var": "x"},
            {"label": "A", "var": "no spaces allowed", "format": "roman"},
            {"label": "B", "var": "b", "currency": "euro"},
            "text",
        ]
    )
    assert errors_of(data) == [
        "stages[0].tasks[0].summary[0].label: is required: the words shown before the value",
        "stages[0].tasks[0].summary[1].var: is required: a variable path like 'bonus.amount'",
        "stages[0].tasks[0].summary[1].format: unknown format 'roman'; one of "
        + ", ".join(spec.SUMMARY_FORMATS),
        "stages[0].tasks[0].summary[2].currency: must be an ISO 4217 code like 'EUR'",
        "stages[0].tasks[0].summary[2]: currency and currency_var only go with format 'money'",
        "stages[0].tasks[0].summary[3]: must be an object {label, var, format}",
    ]
    service = definition_data(
        stages=[("S", [{"task_name": "s", "handler": "flowdesk.noop", "summary": []}])]
    )
    assert errors_of(service) == []
    service["stages"][0]["tasks"][0]["summary"] = [{"label": "X", "var": "x"}]
    assert errors_of(service) == ["stages[0].tasks[0].summary: only a HUMAN task has a summary"]
