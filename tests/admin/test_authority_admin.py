"""The admin reads the same grants as the API: is_staff is a login, not a permission."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from guardian.shortcuts import assign_perm

from processes import engine
from processes.events import Actor
from processes.models import EventType, ProcessDefinition
from tests.factories import UserFactory, definition_data

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("t")


@pytest.fixture
def two_definitions(pizza, import_definition):
    other = import_definition(definition_data("other"))
    for key in ("pizza", "other"):
        engine.process_start(definition_key=key, business_key=f"{key.upper()}-1", actor=SYSTEM)
    return pizza, other


def test_staff_without_grants_is_refused_everywhere(client, two_definitions):
    stan = UserFactory(username="stan", is_staff=True)
    client.force_login(stan)
    index = client.get(reverse("admin:index"))
    assert index.status_code == 200
    assert b"Process instances" not in index.content
    for name in ("processinstance", "processdefinition", "processevent"):
        assert client.get(reverse(f"admin:processes_{name}_changelist")).status_code == 403
    assert client.get(reverse("admin:processes_processinstance_dashboard")).status_code == 403


def test_a_view_grant_shows_that_definition_only(client, two_definitions):
    pizza, _ = two_definitions
    otto = UserFactory(username="otto", is_staff=True)
    assign_perm("processes.view_process", otto, pizza)
    client.force_login(otto)
    page = client.get(reverse("admin:processes_processinstance_changelist")).content
    assert b"PIZZA-1" in page and b"OTHER-1" not in page
    other = engine.process_start(definition_key="other", business_key="OTHER-2", actor=SYSTEM)
    change = reverse("admin:processes_processinstance_change", args=[other.process.pk])
    assert client.get(change).status_code in (302, 403)
    dashboard = client.get(reverse("admin:processes_processinstance_dashboard")).content
    assert b'value="pizza"' in dashboard and b'value="other"' not in dashboard


def correction_url(process):
    return reverse("admin:processes_processinstance_variables", args=[process.pk])


def test_correct_variables_one_at_a_time_with_a_reason(client, pizza):
    process = engine.process_start(
        definition_key="pizza", business_key="P-9", input={"size": "L"}, actor=SYSTEM
    ).process
    fixer = UserFactory(username="fixer", is_staff=True)
    assign_perm("processes.correct_variables", fixer, pizza)
    client.force_login(fixer)
    page = client.get(reverse("admin:processes_processinstance_change", args=[process.pk]))
    assert b"Correct variables" in page.content
    listing = client.get(correction_url(process)).content.decode()
    assert 'data-path="size"' in listing and "not declared: any JSON value" in listing
    form = client.get(correction_url(process) + "?path=size")
    assert form.status_code == 200 and b"&quot;L&quot;" in form.content
    # bad input: a form error, nothing changed
    for bad, message in (
        ("", "give the new value"),
        ('"L\u0007"', "must not contain control characters (U+0007)"),
        ('"L"', "no variable would change"),
    ):
        response = client.post(
            correction_url(process), {"path": "size", "value": bad, "reason": "r"}
        )
        assert response.status_code == 200 and message in response.content.decode(), bad
    response = client.post(correction_url(process), {"path": "size", "value": '"S"', "reason": ""})
    assert "This field is required" in response.content.decode()
    process.refresh_from_db()
    assert process.variables == {"size": "L"}
    for path, value in (("size", "S"), ("gift", "true")):  # plain text is text, JSON is JSON
        response = client.post(
            correction_url(process), {"path": path, "value": value, "reason": "phone"}
        )
        assert response.status_code == 302
    process.refresh_from_db()
    assert process.variables == {"size": "S", "gift": True}
    first, second = process.events.filter(type=EventType.VARIABLES_CHANGED).order_by("seq")
    assert first.data["changes"] == {"size": {"before": "L", "after": "S"}}
    assert second.data["changes"] == {"gift": {"after": True}}
    assert first.data["reason"] == "phone" and first.actor_user == fixer


def test_correcting_needs_its_own_grant(client, pizza):
    process = engine.process_start(definition_key="pizza", business_key="P-8", actor=SYSTEM).process
    operator = UserFactory(username="op", is_staff=True)
    for perm in ("view_process", "operate_process"):
        assign_perm(f"processes.{perm}", operator, pizza)
    client.force_login(operator)
    page = client.get(reverse("admin:processes_processinstance_change", args=[process.pk]))
    assert b"Correct variables" not in page.content
    assert client.get(correction_url(process)).status_code == 403
    response = client.post(correction_url(process), {"path": "x", "value": "1", "reason": "x"})
    assert response.status_code == 403


def test_publishing_a_key_needs_its_grant(client, pizza):
    editor = UserFactory(username="editor", is_staff=True)
    client.force_login(editor)
    add = reverse("admin:processes_processdefinition_add")
    assert client.get(add).status_code == 403
    editor.user_permissions.add(Permission.objects.get(codename="add_processdefinition"))
    editor = type(editor).objects.get(pk=editor.pk)  # drop the permission cache
    client.force_login(editor)
    assert client.get(add).status_code == 200
    # a new key: stored, and its creator may publish it from now on
    response = client.post(
        add,
        {
            "spec_text": '{"workflow_name": "Mine", "key": "mine", "stages": [{"stage_name": "S", '
            '"stage_order": 1, "tasks": [{"task_name": "t", "task_queue": "q"}]}]}',
            "_publish": "1",
        },
    )
    assert response.status_code == 302
    assert ProcessDefinition.objects.get(key="mine").status == "published"
    # an existing key it holds no grant on: refused with a message, nothing stored
    response = client.post(
        add,
        {
            "spec_text": '{"workflow_name": "Pizza", "key": "pizza", "stages": [{"stage_name": "S", '
            '"stage_order": 1, "tasks": [{"task_name": "t", "task_queue": "q"}]}]}',
            "_publish": "1",
        },
        follow=True,
    )
    assert "ou may not publish versions of &#x27;pizza&#x27;" in response.content.decode()
    assert ProcessDefinition.objects.filter(key="pizza").count() == 1
    publish = reverse("admin:processes_processdefinition_retire", args=[pizza.pk])
    assert client.get(publish).status_code == 403
