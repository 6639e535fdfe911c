"""Declared, typed process data (``spec.data``): the declarations parse with their JSON paths,
and the one validator converts and refuses as documented (properties with hypothesis)."""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processes import spec as spec_module
from processes.spec import FormField
from processes.spec.data import coerce, normalize_business_key, validate
from tests.conftest import DEFINITIONS


def definition(input_fields=None, result=None, task_type="SERVICE"):
    task = {"task_name": "work", "task_type": task_type, "task_queue": "q"}
    if task_type == "HUMAN":
        task = {"task_name": "work", "task_type": "HUMAN", "assigned_to": "people"}
    if result is not None:
        task["result"] = result
    data = {"workflow_name": "Typed", "key": "typed", "stages": [
        {"stage_name": "S", "stage_order": 1, "tasks": [task]}
    ]}  # fmt: skip
    if input_fields is not None:
        data["input"] = input_fields
    return data


def errors_of(data) -> dict[str, str]:
    spec, errors = spec_module.parse(data, known_handlers=[])
    return {e.path: e.message for e in errors}


# --- the declarations ---------------------------------------------------------------------------


def test_shipped_definitions_declare_their_input_and_results():
    for name in ("salary.json", "salary_run.json"):
        spec = spec_module.parse_or_raise(
            json.loads((DEFINITIONS / name).read_text()), known_handlers=spec_module.ANY_HANDLER
        )
        assert spec.input, name
        assert all(t.result is not None for t in spec.tasks if t.type == "SERVICE"), name
    salary = spec_module.parse_or_raise(
        json.loads((DEFINITIONS / "salary.json").read_text()),
        known_handlers=spec_module.ANY_HANDLER,
    )
    amount = spec_module.declared_field(salary, "bonus.amount")
    assert (amount.type, amount.places, amount.required) == ("decimal", 2, True)
    assert spec_module.declared_field(salary, "bonus.review.round").type == "integer"


def test_a_seed_template_declares_nothing_and_stays_free_form():
    pizza = spec_module.parse_or_raise(json.loads((DEFINITIONS / "pizza.json").read_text()))
    assert pizza.input is None and all(t.result is None for t in pizza.tasks)


@pytest.mark.parametrize(
    ("field", "path", "message"),
    [
        ({"name": "a b"}, "input[0].name", "must be a variable path like 'bonus.amount'"),
        ({"name": "x", "type": "money"}, "input[0].type", "unknown type 'money'"),
        ({"name": "x", "pattern": "(a+)+"}, "input[0].pattern", "exponential time"),
        ({"name": "x", "pattern": "("}, "input[0].pattern", "not a regular expression"),
        ({"name": "x", "type": "integer", "pattern": "1"}, "input[0].pattern", "only a string"),
        ({"name": "x", "type": "decimal", "places": 11}, "input[0].places", "from 0 to 10"),
        ({"name": "x", "type": "string", "places": 2}, "input[0].places", "only a decimal"),
        ({"name": "x", "min": 5, "max": 1, "type": "integer"}, "input[0].max", "less than min"),
        ({"name": "x", "colour": "red"}, "input[0]", "unknown key(s): colour"),
        ({"name": "x", "type": "list"}, "input[0].items", "a list needs its items"),
        ({"name": "work.x"}, "input[0].name", "is the name of a task"),
    ],
)
def test_a_bad_input_declaration_names_its_json_path(field, path, message):
    assert message in errors_of(definition([field])).get(path, ""), errors_of(definition([field]))


def test_a_field_cannot_also_hold_fields_and_names_are_unique():
    found = errors_of(definition([{"name": "a"}, {"name": "a.b"}, {"name": "c"}, {"name": "c"}]))
    assert "a field can't also hold fields" in found["input[1].name"]
    assert "duplicate" in found["input[3].name"]


def test_only_a_service_or_message_task_declares_a_result():
    found = errors_of(definition(result=[{"name": "x"}], task_type="HUMAN"))
    assert (
        found["stages[0].tasks[0].result"] == "only a SERVICE or MESSAGE task declares its result"
    )
    spec, errors = spec_module.parse(definition(result=[{"name": "amount.value"}]))
    assert not errors and spec.task("work").result[0].name == "amount.value"


# --- one value ----------------------------------------------------------------------------------

MONEY = FormField("amount", "decimal", places=2, min=0)


@pytest.mark.parametrize(
    ("value", "stored"),
    [("409.32", "409.32"), ("409.3", "409.30"), (409, "409.00"), (" 7 ", "7.00"), ("-0", "0.00")],
)
def test_money_is_a_canonical_decimal_text(value, stored):
    assert coerce(MONEY, value) == stored


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (409.32, "a JSON number with a fraction is a binary float"),
        ("three hundred", "must be a number"),
        ("NaN", "must be a finite number"),
        ("Infinity", "must be a finite number"),
        (float("inf"), "must be a finite number"),
        ("409.321", "must have at most 2 decimal places"),
        ("-1", "must be at least 0"),
        ("1e400", "must be between -1e15 and 1e15"),
        (True, "must be a number"),
    ],
)
def test_what_money_refuses(value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        coerce(MONEY, value)


@pytest.mark.parametrize(
    ("field", "text", "value"),
    [
        (FormField("n", "integer"), "12", 12),
        (FormField("b", "boolean"), "yes", True),
        (FormField("b", "boolean"), "FALSE", False),
        (FormField("d", "date"), "2026-11-07", "2026-11-07"),
        (FormField("c", "choice", choices=("S", "M")), "M", "M"),
        (FormField("s", "string", pattern="E\\d{3}"), " E001 ", "E001"),
        (FormField("t", "text"), "two\r\nlines\tand a tab", "two\nlines\tand a tab"),
        (FormField("l", "list", items=FormField("item", "integer")), "1, 2,3", [1, 2, 3]),
    ],
)
def test_text_is_converted_to_the_declared_type(field, text, value):
    """A CSV cell or a form input is text: it becomes the declared type."""
    assert coerce(field, text) == value


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (FormField("s"), "a\x1bb", "must not contain control characters (U+001B)"),
        (FormField("s"), "a\nb", "must not contain control characters (U+000A)"),
        (FormField("t", "text"), "a\x00b", "must not contain control characters (U+0000)"),
        (FormField("s"), "abc\u202edef", "bidirectional control characters (U+202E)"),
        (FormField("s", pattern="E\\d{3}"), "E0001", "must match the pattern"),
        (FormField("s"), 12, "must be text"),
        (FormField("c", "choice", choices=("S",)), "XL", "must be one of: S"),
        (FormField("d", "date"), "2026-13-01", "must be a date"),
        (FormField("n", "integer"), "1.5", "must be a whole number"),
    ],
)
def test_what_the_other_types_refuse(field, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        coerce(field, value)


# --- a document ---------------------------------------------------------------------------------

DECLARED = (
    FormField("employee_id", required=True, pattern="E\\d{3}"),
    FormField("bonus.amount", "decimal", places=2, required=True),
    FormField("bonus.note", "text"),
)


def test_a_document_is_checked_field_by_field_with_nested_paths():
    clean, errors = validate(DECLARED, {"employee_id": "E001", "bonus": {"amount": "3"}})
    assert (clean, errors) == ({"employee_id": "E001", "bonus": {"amount": "3.00"}}, {})
    clean, errors = validate(DECLARED, {"bonus": {"amount": 3.5, "colour": "red"}, "x": 1})
    assert errors == {
        "bonus.amount": [
            'must be a decimal written as text, e.g. "409.32" (a JSON number with a fraction '
            "is a binary float)"
        ],
        "bonus.colour": ["unknown field"],
        "employee_id": ["this field is required"],
        "x": ["unknown field"],
    }
    assert validate(DECLARED, {"employee_id": "E001", "bonus": 3})[1] == {
        "bonus": ["must be an object"],
        "bonus.amount": ["this field is required"],
    }


def test_dotted_keys_are_paths_as_a_csv_header_gives_them():
    clean, errors = validate(DECLARED, {"employee_id": "E001", "bonus.amount": "3"})
    assert (clean, errors) == ({"employee_id": "E001", "bonus": {"amount": "3.00"}}, {})


def test_undeclared_data_is_free_form_but_safe():
    data = {"a": {"b": ["ok\nline", 1.5]}, "c": "tab\there"}
    assert validate(None, data) == (data, {})
    _, errors = validate(None, {"a": {"b": ["x\x07"]}, "n": float("nan"), "k\x1b": 1})
    assert errors == {
        "$": ["a key must not contain control characters (U+001B)"],
        "a.b[0]": ["must not contain control characters (U+0007)"],
        "n": ["must be a finite number"],
    }


# --- properties ---------------------------------------------------------------------------------


@given(st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=0, max_value=10**9))
def test_any_money_amount_survives_as_text(amount):
    stored = coerce(MONEY, str(amount))
    assert Decimal(stored) == amount and stored == f"{amount:.2f}"
    assert coerce(MONEY, stored) == stored  # converting again changes nothing


@given(st.floats())
def test_no_float_is_ever_money(number):
    with pytest.raises(ValueError):
        coerce(MONEY, number)


@given(st.text(max_size=30))
def test_text_with_a_control_or_bidi_character_is_refused_as_a_string(text):
    unsafe = any(
        ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or 0x202A <= ord(c) <= 0x202E
        or 0x2066 <= ord(c) <= 0x2069 or 0xD800 <= ord(c) <= 0xDFFF
        for c in text.strip()
    )  # fmt: skip
    try:
        coerce(FormField("s"), text)
    except ValueError:
        assert unsafe
    else:
        assert not unsafe


@given(st.one_of(st.integers(), st.floats(), st.text(max_size=20), st.booleans(), st.none()))
def test_an_integer_field_keeps_only_whole_bounded_numbers(value):
    try:
        result = coerce(FormField("n", "integer"), value)
    except ValueError:
        return
    assert isinstance(result, int) and not isinstance(result, bool)
    assert abs(result) <= 10**15
    if isinstance(value, float):
        assert math.isfinite(value) and value == result


# --- business keys ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "key"),
    [("E011-2026-06", "E011-2026-06"), ("E011-2026-06\n", "E011-2026-06"), (" E011 ", "E011")],
)
def test_a_business_key_is_trimmed(raw, key):
    assert normalize_business_key(raw) == (key, None)


@pytest.mark.parametrize(
    "raw", ["", "   ", "x" * 201, "E\x1b011", "E011\u202e", "E\u2066011", "E\u200b011", None, 1.5]
)
def test_a_business_key_with_control_or_format_characters_is_refused(raw):
    key, problem = normalize_business_key(raw)
    assert key is None and problem


def test_an_input_list_with_a_non_object_beside_a_reserved_name_is_two_errors_not_a_crash():
    data = {
        "workflow_name": "x",
        "input": ["x", {"name": "rework"}],
        "stages": [
            {
                "stage_name": "A",
                "stage_order": 1,
                "tasks": [{"task_name": "t", "task_type": "SERVICE"}],
            }
        ],
    }
    spec, errors = spec_module.parse(data, known_handlers=[])
    assert spec is None
    assert [e.path for e in errors] == ["input[0]", "input[1].name"]
