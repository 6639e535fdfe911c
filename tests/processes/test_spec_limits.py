"""Definitions that validate also run (issue 13): durations, numbers, names, sizes and text are
checked against the limits of django-q, datetime and PostgreSQL, and the admin form and the API
give the parser's errors for any JSON, never a 500.
"""

import json

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processes import engine, spec
from processes.admin.forms import DefinitionForm
from processes.events import Actor
from tests.api.conftest import client_for
from tests.factories import UserFactory, definition_data


def errors_of(data, handlers=("flowdesk.noop",)):
    parsed, errors = spec.parse(data, known_handlers=handlers)
    assert (parsed is None) == bool(errors)
    return [str(e) for e in errors]


def one_task(**fields):
    return definition_data("lim", stages=[("S", [{"task_name": "a", **fields}])])


def human(**fields):
    return one_task(task_type="HUMAN", assigned_to="managers", **fields)


@pytest.mark.parametrize(
    "data, path",
    [
        (one_task(handler="flowdesk.noop", timeout="P30000D"), "stages[0].tasks[0].timeout"),
        (one_task(handler="flowdesk.noop", timeout=2**31), "stages[0].tasks[0].timeout"),
        (human(due="P3000000D"), "stages[0].tasks[0].due"),
        (human(escalation={"after": "P3000000D"}), "stages[0].tasks[0].escalation.after"),
        (
            one_task(handler="flowdesk.noop", retry={"backoff": "P99999D"}),
            "stages[0].tasks[0].retry.backoff",
        ),
    ],
)
def test_durations_beyond_the_run_time_limits_are_refused(data, path):
    errors = errors_of(data)
    assert len(errors) == 1 and errors[0].startswith(f"{path}: bad duration: use ISO-8601")
    assert errors[0].endswith(", at most P3650D")


def test_the_longest_durations_allowed_still_parse():
    parsed, errors = spec.parse(
        human(due="P3650D", escalation={"after": "P3650D"}), known_handlers=[]
    )
    assert errors == [] and parsed.tasks[0].due.days == 3650


@pytest.mark.parametrize(
    "data, path",
    [
        ({**one_task(handler="flowdesk.noop"), "key": "lim\n"}, "key"),
        (definition_data("lim", stages=[("S\n", [{"task_name": "a"}])]), "stages[0].stage_name"),
        (
            definition_data("lim", stages=[("S", [{"task_name": "a\n"}])]),
            "stages[0].tasks[0].task_name",
        ),
        (human(outcomes=["ok\n"]), "stages[0].tasks[0].outcomes"),
        (
            definition_data("lim", stages=[("S", [{"task_name": "a", "task_queue": "q" * 201}])]),
            "stages[0].tasks[0].task_queue",
        ),
    ],
)
def test_names_with_a_trailing_newline_or_too_long_are_refused(data, path):
    errors = errors_of(data)
    assert len(errors) == 1 and errors[0].startswith(path + ":")


@pytest.mark.parametrize(
    "value, message",
    [
        (10**400, "numbers must be finite, between -1e15 and 1e15"),
        (float("nan"), "numbers must be finite, between -1e15 and 1e15"),
        (float("inf"), "numbers must be finite, between -1e15 and 1e15"),
        ("a\x00b", "text must not contain NUL (\\u0000)"),
        ("\ud800", "text must be valid Unicode (no lone surrogates)"),
    ],
)
def test_values_postgresql_cant_store_are_refused_at_their_path(value, message):
    data = one_task(handler="flowdesk.noop", custom={"deep": [1, value]})
    assert errors_of(data) == [f"stages[0].tasks[0].custom.deep[1]: {message}"]


def test_a_stage_order_of_10_to_the_400_is_an_error_not_an_overflow():
    data = definition_data("lim")
    data["stages"][0]["stage_order"] = 10**400
    assert errors_of(data) == [
        "stages[0].stage_order: numbers must be finite, between -1e15 and 1e15"
    ]


def nested(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return value


def test_nesting_10000_deep_is_an_error_not_a_recursion_error():
    errors = errors_of(one_task(handler="flowdesk.noop", custom=nested(10_000)))
    assert len(errors) == 1 and errors[0].endswith("nested deeper than 64 levels")


def many_tasks(count):
    return definition_data("many", stages=[("S", [{"task_name": f"t{i}"} for i in range(count)])])


def test_the_task_count_is_bounded_by_a_setting(settings):
    assert errors_of(many_tasks(500)) == []
    assert errors_of(many_tasks(501)) == [
        "stages: at most 500 tasks in all (FLOWDESK_MAX_TASKS); this has 501"
    ]
    settings.FLOWDESK_MAX_TASKS = 20
    assert errors_of(many_tasks(21))[0].startswith("stages: at most 20 tasks")


@pytest.mark.postgres
def test_a_start_of_3000_tasks_inserts_them_in_batches_under_the_parameter_limit(
    postgres, settings, import_definition
):
    # 3,000 tasks of ~30 columns: 90,000 parameters, beyond PostgreSQL's 65,535 for one INSERT.
    settings.FLOWDESK_MAX_TASKS = 3000
    import_definition(many_tasks(3000))

    result = engine.process_start(definition_key="many", business_key="B", actor=Actor.system("t"))

    assert result.created and result.process.tasks.count() == 3000


# --- the same errors from the parser, the admin form and the API -------------------------------

ODD_DOCUMENTS = {
    "huge int": json.dumps(one_task(handler="flowdesk.noop", x=10**400)),
    "NaN": '{"workflow_name": "n", "stages": [{"stage_name": "S", "stage_order": NaN}]}',
    "deep": '{"workflow_name": "d", "x": ' + "[" * 10_000 + "]" * 10_000 + "}",
    "huger int": '{"workflow_name": "h", "x": 1' + "0" * 5000 + "}",
    "NUL": json.dumps(one_task(handler="flowdesk.noop", x="a\x00")),
    "newline key": json.dumps({**one_task(handler="flowdesk.noop"), "key": "lim\n"}),
    "long timeout": json.dumps(one_task(handler="flowdesk.noop", timeout="P30000D")),
}


def _refuse(name):
    raise ValueError(name)


def form_errors(text):
    form = DefinitionForm(data={"spec_text": text})
    assert not form.is_valid()
    return form.errors["spec_text"]


@pytest.mark.django_db
@pytest.mark.parametrize("name", list(ODD_DOCUMENTS))
def test_the_admin_and_the_api_refuse_odd_documents_with_the_parsers_errors(
    name, client, django_user_model
):
    text = ODD_DOCUMENTS[name]
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    api = client_for(root)
    client.force_login(root)
    try:
        parsed = json.loads(text, parse_constant=_refuse)
    except (ValueError, RecursionError):
        parsed = None  # not JSON (for Python's strict reading): both say so

    answer = api.post("/api/definitions/", text, content_type="application/json")
    page = client.post(
        reverse("admin:processes_processdefinition_add"), {"spec_text": text, "_save": "x"}
    )

    assert answer.status_code == 400 and page.status_code == 200
    shown, error = form_errors(text), answer.json()["error"]
    if parsed is None:
        assert error["code"] == "parse_error" and shown[0].startswith("not valid JSON")
        return
    _, expected = spec.parse(parsed)
    assert expected and [f"{e.path or '(top level)'}: {e.message}" for e in expected] == shown
    if error["code"] == "parse_error":  # the API's JSON reading refuses NUL for every endpoint
        assert name == "NUL" and "NUL" in error["message"]
    else:
        assert error["errors"] == [e.as_dict() for e in expected]


# --- property-based: any input gives a spec or errors, never an exception ----------------------

leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**420), max_value=10**420)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(alphabet=st.characters(codec=None, blacklist_categories=()), max_size=12)
    | st.sampled_from(["PT5S", "P30000D", "P3000000D", "lim\n", "a\x00", "HUMAN", "SERVICE"])
)
json_like = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(
                [
                    "workflow_name",
                    "key",
                    "stages",
                    "stage_name",
                    "stage_order",
                    "tasks",
                    "task_name",
                    "task_type",
                    "assigned_to",
                    "handler",
                    "timeout",
                    "due",
                    "escalation",
                    "after",
                    "retry",
                    "backoff",
                    "max_attempts",
                    "form",
                    "condition",
                    "outcomes",
                    "x",
                ]
            ),
            children,
            max_size=6,
        )
    ),
    max_leaves=40,
)


def mutated_definitions():
    """A valid definition with one of its values replaced by anything."""
    base = one_task(handler="flowdesk.noop", timeout="PT5S", retry={"max_attempts": 2})
    return st.tuples(
        st.sampled_from(["key", "workflow_name", "stage_order", "task_name", "timeout", "retry"]),
        json_like,
    ).map(lambda kv: _replace(base, *kv))


def _replace(base, key, value):
    data = json.loads(json.dumps(base))
    stage, task = data["stages"][0], data["stages"][0]["tasks"][0]
    target = data if key in ("key", "workflow_name") else stage if key == "stage_order" else task
    target[key] = value
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(json_like, mutated_definitions()))
def test_the_parser_gives_a_spec_or_errors_for_any_value(value):
    parsed, errors = spec.parse(value, known_handlers=["flowdesk.noop"])
    assert (parsed is None) != (errors == [])
    assert all(isinstance(e.path, str) and e.message for e in errors)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(json_like, mutated_definitions()))
def test_the_admin_form_shows_the_parsers_errors_for_any_json(value):
    text = json.dumps(value, allow_nan=True)
    form = DefinitionForm(data={"spec_text": text})
    valid = form.is_valid()
    try:
        data = json.loads(text, parse_constant=lambda name: 1 / 0)
    except (ZeroDivisionError, ValueError):
        assert not valid and form.errors["spec_text"][0].startswith("not valid JSON")
        return
    parsed, errors = spec.parse(data)
    assert valid == (parsed is not None)
    if errors:
        assert form.errors["spec_text"] == [
            f"{e.path or '(top level)'}: {e.message}" for e in errors
        ]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_the_admin_form_takes_any_text(text):
    form = DefinitionForm(data={"spec_text": text})
    if not form.is_valid():
        assert form.errors
