"""Definitions in the admin: edit JSON with errors at their paths, drafts, publish, versions,
diff, retire, import a file."""

import datetime as dt
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from processes.engine import schedules
from processes.models import DefinitionStatus, ImmutableError, ProcessDefinition, ProcessInstance
from tests.admin.helpers import start
from tests.conftest import DEFINITIONS
from tests.factories import definition_data

pytestmark = pytest.mark.django_db

ADD = "admin:processes_processdefinition_add"


def change(definition):
    return reverse("admin:processes_processdefinition_change", args=[definition.pk])


def test_save_as_draft_then_edit_then_publish(admin_client):
    data = definition_data("orders")
    response = admin_client.post(
        reverse(ADD), {"spec_text": json.dumps(data), "_save": "Save as draft"}
    )
    draft = ProcessDefinition.objects.get(key="orders")
    assert response.status_code == 302 and response["Location"] == change(draft)
    assert (draft.version, draft.status) == (1, DefinitionStatus.DRAFT)
    assert draft.created_by.username == "admin"

    # a draft is edited in place
    data["description"] = "take orders"
    admin_client.post(change(draft), {"spec_text": json.dumps(data), "_save": "Save as draft"})
    draft = ProcessDefinition.objects.get(pk=draft.pk)
    assert draft.description == "take orders" and draft.status == DefinitionStatus.DRAFT

    # and published from its page
    data["description"] = "take all orders"
    admin_client.post(change(draft), {"spec_text": json.dumps(data), "_publish": "publish"})
    published = ProcessDefinition.objects.get(pk=draft.pk)
    assert published.status == DefinitionStatus.PUBLISHED
    assert published.description == "take all orders"
    assert ProcessDefinition.objects.filter(key="orders").count() == 1


def test_bad_json_is_a_form_error_with_line_and_column(admin_client):
    response = admin_client.post(reverse(ADD), {"spec_text": '{"stages": [1,,]}', "_save": "x"})
    assert response.status_code == 200
    assert b"not valid JSON" in response.content and b"line 1, column" in response.content
    assert not ProcessDefinition.objects.exists()


def test_every_spec_error_is_shown_at_its_path(admin_client):
    data = definition_data(
        "broken",
        stages=[
            ("A", [{"task_name": "a", "parent_task": ["ghost"]}]),
            ("B", [{"task_name": "h", "task_type": "HUMAN"}, {"task_name": "a"}]),
        ],
    )
    response = admin_client.post(reverse(ADD), {"spec_text": json.dumps(data), "_save": "x"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "stages[0].tasks[0].parent_task" in page and "unknown task &#x27;ghost&#x27;" in page
    assert "stages[1].tasks[0].assigned_to" in page
    assert "stages[1].tasks[1].task_name" in page and "duplicate task name" in page
    assert 'id="fd-spec-errors"' in page
    # the text the admin typed is kept
    assert "ghost" in page
    for value in ("[]", '"text"', "null", "{}"):
        again = admin_client.post(reverse(ADD), {"spec_text": value, "_save": "x"})
        assert again.status_code == 200 and b"errorlist" in again.content


def test_published_definition_is_read_only(admin_client, pizza):
    page = admin_client.get(change(pizza))
    assert page.status_code == 200
    assert b'name="spec_text"' not in page.content
    assert b"Edit as a new version" in page.content
    assert admin_client.post(change(pizza), {"spec_text": "{}"}).status_code == 403
    pizza.spec = {**pizza.spec, "description": "changed"}
    with pytest.raises(ImmutableError):
        pizza.save()


def test_edit_as_new_version_and_diff(admin_client, pizza):
    # the add page starts from the chosen version
    page = admin_client.get(reverse(ADD) + f"?from={pizza.pk}")
    assert b"Deliver Pizza" in page.content
    data = {**pizza.spec, "description": "now with extra cheese"}
    admin_client.post(reverse(ADD), {"spec_text": json.dumps(data), "_publish": "publish"})
    v2 = ProcessDefinition.objects.get(key="pizza", version=2)
    assert v2.status == DefinitionStatus.PUBLISHED
    assert ProcessDefinition.objects.get(pk=pizza.pk).spec == pizza.spec  # v1 untouched

    diff = admin_client.get(reverse("admin:processes_processdefinition_diff", args=[v2.pk]))
    text = diff.content.decode()
    assert diff.status_code == 200
    assert '<span class="add">+  &quot;description&quot;: &quot;now with extra cheese&quot;' in text
    assert "pizza v1 → pizza v2" in text

    # an identical import stores nothing new
    response = admin_client.post(
        reverse(ADD), {"spec_text": json.dumps(data), "_publish": "publish"}, follow=True
    )
    assert b"nothing new stored" in response.content
    assert ProcessDefinition.objects.filter(key="pizza").count() == 2


def test_instance_counts_per_version(admin_client, pizza):
    start("pizza", "O-1")
    start("pizza", "O-2")
    listing = admin_client.get(reverse("admin:processes_processdefinition_changelist"))
    assert f'?definition__id__exact={pizza.pk}">2</a>'.encode() in listing.content
    page = admin_client.get(change(pizza))
    assert f'?definition__id__exact={pizza.pk}">2</a>'.encode() in page.content


def test_retire_asks_then_retires(admin_client, pizza):
    url = reverse("admin:processes_processdefinition_retire", args=[pizza.pk])
    assert b"Yes, retire" in admin_client.get(url).content
    response = admin_client.post(url, follow=True)
    assert b"is now retired" in response.content
    assert ProcessDefinition.objects.get(pk=pizza.pk).status == DefinitionStatus.RETIRED
    again = admin_client.post(url, follow=True)
    assert again.status_code == 200 and b"annot retire pizza v1: it is retired" in again.content


def test_publish_a_draft_from_its_button(admin_client):
    admin_client.post(reverse(ADD), {"spec_text": json.dumps(definition_data("d")), "_save": "x"})
    draft = ProcessDefinition.objects.get(key="d")
    url = reverse("admin:processes_processdefinition_publish", args=[draft.pk])
    admin_client.post(url)
    assert ProcessDefinition.objects.get(pk=draft.pk).status == DefinitionStatus.PUBLISHED


def test_import_the_seed_template_file(admin_client):
    seed = (DEFINITIONS / "pizza.json").read_bytes()
    upload = SimpleUploadedFile("pizza.json", seed, content_type="application/json")
    response = admin_client.post(
        reverse(ADD), {"upload": upload, "key_override": "seedpizza", "_publish": "publish"}
    )
    assert response.status_code == 302
    definition = ProcessDefinition.objects.get(key="seedpizza")
    assert definition.status == DefinitionStatus.PUBLISHED
    assert definition.component_name == "ITALIAN"
    assert [t.name for t in definition.parsed().tasks] == [
        "confirm_order",
        "make_food",
        "assign_executive",
        "confirm_delivery",
        "deliver_food",
    ]


def test_import_a_bad_file_is_a_form_error(admin_client):
    for content, message in ((b"\xff\xfe\x00", b"not UTF-8"), (b"{nope", b"not valid JSON")):
        upload = SimpleUploadedFile("x.json", content)
        response = admin_client.post(reverse(ADD), {"upload": upload, "_save": "x"})
        assert response.status_code == 200 and message in response.content
    assert not ProcessDefinition.objects.exists()


def test_definition_diagram_is_on_the_page_and_served(admin_client, pizza):
    page = admin_client.get(change(pizza))
    assert b'class="fd-diagram"' in page.content
    svg = admin_client.get(reverse("admin:processes_processdefinition_diagram", args=[pizza.pk]))
    assert svg["Content-Type"] == "image/svg+xml" and svg.content.startswith(b"<svg")


def test_a_scheduled_definition_shows_its_next_runs_and_the_last_runs_case(
    admin_client, import_definition, settings
):
    settings.TIME_ZONE = "Europe/Paris"
    import_definition("salary.json")
    run = import_definition("salary_run.json")
    ProcessDefinition.objects.filter(pk=run.pk).update(
        published_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    )
    page = admin_client.get(change(run)).content.decode()
    assert "Scheduled starts" in page and "0 6 25 * *" in page and "none yet" in page
    assert "cron (Europe/Paris)" in page
    schedules.schedules_run(now=dt.datetime(2026, 1, 25, 5, 1, tzinfo=dt.UTC))
    page = admin_client.get(change(run)).content.decode()
    process = ProcessInstance.objects.get(business_key="RUN-2026-01")
    assert reverse("admin:processes_processinstance_change", args=[process.pk]) in page
    assert "2026-01-25 06:00: " in page
    # the next runs, at 06:00 local time
    assert page.count(" 06:00<br>") == 2
    # a definition without a schedule has no such section
    plain = import_definition(definition_data("plain"))
    assert "Scheduled starts" not in admin_client.get(change(plain)).content.decode()
