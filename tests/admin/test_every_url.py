"""Every admin URL the site registers answers without a 500, for an existing object of each model,
with and without odd parameters (issue 13): list, add, change, delete, history, every custom view
and export, every changelist filter given NUL bytes, invalid text and values of the wrong type.

The URLs are read from ``admin.site`` itself, so a page added later is walked too.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import URLPattern, reverse

from integrations.models import (
    AlertRecipient,
    Incident,
    SimulatorCall,
    SimulatorFault,
    SimulatorNotice,
    SimulatorPayout,
    SmsMessage,
    WatchdogState,
)
from processes import engine
from processes.events import Actor
from tests.factories import GroupFactory, UserFactory, definition_data

pytestmark = pytest.mark.django_db

# Values of a query parameter that once gave a 500 somewhere, or could.
ODD_VALUES = [
    "\x00",
    "a\x00b",
    "%FF%FE",  # percent-encoded invalid UTF-8 (sent raw)
    "salary",  # a key where an id is expected
    "-1",
    "1" * 400,
    "9" * 30,
    "1" * 5000,  # past Python's 4,300-digit limit for int(text)
    "2026-13-45",
    "\ud800",  # a lone surrogate: not encodable text
    "' OR 1=1 --",
]


def _encode(value: str) -> str:
    if value == "%FF%FE":
        return value
    return quote(value, safe="", errors="surrogatepass")


@pytest.fixture
def superuser_client():
    user = UserFactory(username="root", is_staff=True, is_superuser=True)
    client = Client(raise_request_exception=False)
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture
def objects(import_definition):
    """One row of every registered model (an instance of 'salary', with tasks and events)."""
    actor = Actor.system("test")
    definition = import_definition(
        definition_data(
            "salary",
            stages=[
                (
                    "MAIN",
                    [
                        {"task_name": "only", "handler": "flowdesk.noop"},
                        {
                            "task_name": "ask",
                            "task_type": "HUMAN",
                            "assigned_to": "managers",
                            "parent_task": ["only"],
                        },
                    ],
                )
            ],
        )
    )
    process = engine.process_start(definition_key="salary", business_key="E1", actor=actor).process
    oncall = UserFactory(username="oncall", is_staff=True)
    recipient = AlertRecipient.objects.create(user=oncall, phone="+33612345678")
    incident = Incident.objects.create(key="k1", message="m", process_id=process.pk)
    sms = SmsMessage.objects.create(incident=incident, phone=recipient.phone, body="b")
    rows = {
        "group": GroupFactory(name="managers"),
        "processdefinition": definition,
        "processinstance": process,
        "processevent": process.events.order_by("seq").first(),
        "alertrecipient": recipient,
        "incident": incident,
        "smsmessage": sms,
        "simulatorfault": SimulatorFault.objects.get_or_create(system="bonus")[0],
        "simulatorpayout": SimulatorPayout.objects.create(
            employee_id="E1", period="2026-11", salary_base=1, bonus=0, total=1, reference="r1"
        ),
        "simulatornotice": SimulatorNotice.objects.create(
            employee_id="E1", period="2026-11", decided_by="x"
        ),
        "simulatorcall": SimulatorCall.objects.create(
            system="bonus",
            endpoint="/x",
            idempotency_key="i1",
            status_code=200,
            started_at=process.created_at,
            finished_at=process.created_at,
        ),
        "watchdogstate": WatchdogState.objects.create(name="flowdesk", reasons=["x"]),
        "task": process.tasks.order_by("pk").first(),
    }
    return rows


def _fill(pattern: URLPattern, obj, task) -> list[dict]:
    """The keyword arguments to reverse ``pattern`` with: each parameter's good and odd values."""
    names = list(pattern.pattern.converters)
    values = {
        "object_id": [str(getattr(obj, "pk", ""))],
        "pk": [str(getattr(obj, "pk", ""))],
        "fmt": ["csv", "json", "xml"],
        "task_id": [str(task.pk), "999999"],
        "action": ["retry", "skip", "nonsense"],
        "verb": ["publish", "retire", "nonsense"],
    }
    kwarg_sets = [{}]
    for name in names:
        kwarg_sets = [{**k, name: v} for k in kwarg_sets for v in values.get(name, ["x"])]
    return kwarg_sets


def _admin_urls(objects) -> list[str]:
    urls = []
    for model, model_admin in admin.site._registry.items():
        obj = objects.get(model._meta.model_name)
        if obj is None:
            obj = model.objects.order_by("pk").first()
        for pattern in model_admin.urls:
            if not isinstance(pattern, URLPattern) or pattern.name is None:
                continue  # the catch-all redirect
            needs_object = bool(pattern.pattern.converters)
            if needs_object and obj is None:
                continue
            for kwargs in _fill(pattern, obj, objects["task"]):
                urls.append(reverse(f"admin:{pattern.name}", kwargs=kwargs))
    return urls


def test_the_walk_covers_every_model_and_the_two_old_500s(objects):
    urls = _admin_urls(objects)
    process = objects["processinstance"]
    models = {m._meta.model_name for m in admin.site._registry}

    assert {"processinstance", "processdefinition", "user", "smsmessage"} <= models
    assert f"/admin/processes/processinstance/{process.pk}/history/" in urls
    assert "/admin/processes/processinstance/export/json/" in urls
    assert len(urls) > 60


QUERIES = [
    "",
    "?definition=salary",
    "?q=%00",
    "?o=99&p=-1",
    "?_changelist_filters=%00",
    "?from=" + "1" * 5000,
    "?days=" + "7" * 5000,
    "?p=" + "1" * 5000,
]


def test_every_admin_url_answers_without_a_500(superuser_client, objects):
    problems = []
    for url in _admin_urls(objects) + ["/admin/", "/admin/processes/", "/admin/integrations/"]:
        for query in QUERIES:
            response = superuser_client.get(url + query)
            assert not response.get("Location", "").startswith("/admin/login/")
            if response.status_code >= 500:
                problems.append((url + query, response.status_code))
    assert problems == [], problems


def test_the_history_button_of_an_instance_leads_to_its_append_only_history(
    superuser_client, objects
):
    process = objects["processinstance"]

    response = superuser_client.get(
        reverse("admin:processes_processinstance_history", args=[process.pk]), follow=True
    )

    assert response.status_code == 200
    assert b"History (append-only)" in response.content


def test_the_filtered_json_export_of_a_definition_key(superuser_client, objects):
    response = superuser_client.get(
        "/admin/processes/processinstance/export/json/?definition_key=salary"
    )
    assert response.status_code == 200
    data = json.loads(b"".join(response.streaming_content))
    assert [p["definition"] for p in data["processes"]] == ["salary"]


def test_a_filter_value_of_the_wrong_type_in_an_export_is_said_not_a_500(superuser_client, objects):
    response = superuser_client.get(
        "/admin/processes/processinstance/export/json/?definition=salary", follow=True
    )

    assert response.status_code == 200
    assert "Nothing exported: the list&#x27;s filters are not valid" in response.content.decode()


def _filter_parameters(model_admin, request) -> list[str]:
    changelist = model_admin.get_changelist_instance(request)
    names = set()
    for spec in changelist.filter_specs:
        names.update(spec.expected_parameters())
    return sorted(names)


def test_every_changelist_filter_with_odd_values_answers_without_a_500(
    superuser_client, objects, rf
):
    request = rf.get("/")
    request.user = superuser_client.user
    problems, walked = [], 0
    for model, model_admin in admin.site._registry.items():
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        for name in _filter_parameters(model_admin, request) + ["q", "o", "p", "e"]:
            for value in ODD_VALUES:
                walked += 1
                response = superuser_client.get(f"{url}?{name}={_encode(value)}")
                assert not response.get("Location", "").startswith("/admin/login/")
                if response.status_code >= 500:
                    problems.append((url, name, value, response.status_code))
    assert walked > 20 * len(ODD_VALUES)  # the issue counted 20 changelist filters
    assert problems == [], problems


def test_a_nul_in_a_filter_value_is_a_400_that_says_why(superuser_client, objects):
    response = superuser_client.get("/admin/processes/processinstance/?definition_key=%00")

    assert response.status_code == 400
    assert "NUL characters (%00) are not allowed" in response.content.decode()


def test_every_admin_action_given_ids_that_cant_be_rows_answers_400_not_500(
    superuser_client, objects, rf
):
    request = rf.get("/")
    request.user = superuser_client.user
    problems, walked = [], 0
    for model, model_admin in admin.site._registry.items():
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        for action in model_admin.get_actions(request):
            for value in ["1" * 5000, "9" * 30, "x", "\x00"]:
                walked += 1
                response = superuser_client.post(
                    url, {"action": action, "_selected_action": [value], "index": 0}
                )
                if response.status_code >= 500:
                    problems.append((url, action, value[:20], response.status_code))
    assert walked > 20 * 4
    assert problems == [], problems
    # and it says why
    response = superuser_client.post(
        reverse("admin:processes_processdefinition_changelist"),
        {"action": "delete_selected", "_selected_action": ["1" * 5000], "index": 0},
    )
    assert response.status_code == 400
    assert "is not the id of a process definition" in response.content.decode()
