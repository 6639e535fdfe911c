"""Instance and event lists: filters, search, exports, read-only events, constant query counts."""

import csv
import datetime as dt
import io
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from processes import engine
from processes.models import EventType, ProcessEvent, ProcessInstance
from tests.admin.helpers import SYSTEM, events, start, task
from tests.factories import complete_task, definition_data

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:processes_processinstance_changelist"


def approval_definition(key="approval"):
    return definition_data(
        key,
        stages=[
            (
                "DECIDE",
                [
                    {"task_name": "check", "business_status": "CHECKED"},
                    {
                        "task_name": "approve",
                        "task_type": "HUMAN",
                        "assigned_to": "managers",
                        "parent_task": ["check"],
                        "due": "PT1H",
                    },
                ],
            )
        ],
    )


@pytest.fixture
def approvals(import_definition):
    return import_definition(approval_definition())


def make_instances(n, prefix="A", overdue_every=3):
    made = []
    for i in range(n):
        p = start("approval", f"{prefix}-{i}")
        complete_task(task(p, "check"), {})
        if i % overdue_every == 0:  # push the human task's due time into the past
            from processes.models import TaskInstance

            TaskInstance.objects.filter(pk=task(p, "approve").pk).update(
                due_at=timezone.now() - dt.timedelta(hours=2)
            )
        made.append(p)
    return made


def keys(response):
    return {p.business_key for p in response.context["cl"].result_list}


def test_filters_and_search(admin_client, approvals, pizza):
    made = make_instances(4)
    start("pizza", "PIZZA-1")
    engine.task_fail(
        task_id=task(made[1], "approve").pk, actor=SYSTEM, error="boom", retryable=False
    )
    url = reverse(CHANGELIST)

    assert keys(admin_client.get(url)) == {"A-0", "A-1", "A-2", "A-3", "PIZZA-1"}
    assert keys(admin_client.get(url, {"state__exact": "failed"})) == {"A-1"}
    assert keys(admin_client.get(url, {"incident": "yes"})) == {"A-1"}
    assert "A-1" not in keys(admin_client.get(url, {"incident": "no"}))
    assert keys(admin_client.get(url, {"definition_key": "pizza"})) == {"PIZZA-1"}
    assert keys(admin_client.get(url, {"definition__id__exact": approvals.pk})) == {
        "A-0",
        "A-1",
        "A-2",
        "A-3",
    }
    assert keys(admin_client.get(url, {"business_status": "CHECKED"})) == {
        "A-0",
        "A-1",
        "A-2",
        "A-3",
    }
    assert keys(admin_client.get(url, {"business_status": "__none__"})) == {"PIZZA-1"}
    assert keys(admin_client.get(url, {"overdue": "yes"})) == {"A-0", "A-3"}
    assert keys(admin_client.get(url, {"overdue": "no"})) == {"A-1", "A-2", "PIZZA-1"}
    today = timezone.localdate().isoformat()
    assert len(keys(admin_client.get(url, {"started_from": today, "started_to": today}))) == 5
    assert keys(admin_client.get(url, {"started_to": "2000-01-01"})) == set()
    bad = admin_client.get(url, {"started_from": "yesterday"})
    assert bad.status_code == 200 and b"is not a date" in bad.content
    assert keys(admin_client.get(url, {"q": "A-2"})) == {"A-2"}
    assert keys(admin_client.get(url, {"q": str(made[3].pk)})) == {"A-3"}
    # partial and any case (a trigram index serves it)
    assert keys(admin_client.get(url, {"q": "a-"})) == {"A-0", "A-1", "A-2", "A-3", "PIZZA-1"}
    assert keys(admin_client.get(url, {"q": "IZZ"})) == {"PIZZA-1"}
    assert keys(admin_client.get(url, {"q": "qq"})) == set()


def test_list_queries_do_not_grow_with_instances(admin_client, approvals):
    url = reverse(CHANGELIST)
    event_url = reverse("admin:processes_processevent_changelist")
    definition_url = reverse("admin:processes_processdefinition_changelist")
    make_instances(2, "S")
    admin_client.get(url)  # warm caches (content types, sessions)

    def count(u, params=None):
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client.get(u, params or {}).status_code == 200
        return len(ctx)

    small = {u: count(u) for u in (url, event_url, definition_url)}
    small_filtered = count(url, {"overdue": "yes", "state__exact": "running"})
    make_instances(15, "L")
    assert {u: count(u) for u in (url, event_url, definition_url)} == small
    assert count(url, {"overdue": "yes", "state__exact": "running"}) == small_filtered


def test_superuser_cannot_change_or_delete_an_event(admin_client, approvals):
    process = make_instances(1)[0]
    event = events(process)[0]
    change = reverse("admin:processes_processevent_change", args=[event.pk])
    delete = reverse("admin:processes_processevent_delete", args=[event.pk])

    page = admin_client.get(change)
    assert page.status_code == 200  # view only
    assert b'name="_save"' not in page.content and b"deletelink" not in page.content
    assert admin_client.post(change, {"type": "task_failed", "data": "{}"}).status_code == 403
    assert admin_client.get(delete).status_code == 403
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    listing = admin_client.get(reverse("admin:processes_processevent_changelist"))
    assert b"delete_selected" not in listing.content
    assert admin_client.get(reverse("admin:processes_processevent_add")).status_code == 403

    # nor through the instance page's inline
    page = admin_client.get(reverse("admin:processes_processinstance_change", args=[process.pk]))
    assert b"events-0-DELETE" not in page.content and b'name="events-0-type"' not in page.content
    stored = ProcessEvent.objects.get(pk=event.pk)
    assert (stored.type, stored.data) == (event.type, event.data)
    assert ProcessEvent.objects.filter(process_id=process.pk).count() == len(events(process))


def test_instance_history_exports(admin_client, approvals):
    process = make_instances(1)[0]
    base = reverse(
        "admin:processes_processinstance_history_export", args=[process.pk, "csv"]
    ).removesuffix(".csv")
    response = admin_client.get(base + ".csv")
    assert response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [int(r["seq"]) for r in rows] == [e.seq for e in events(process)]
    assert rows[0]["type"] == EventType.PROCESS_STARTED and rows[0]["business_key"] == "A-0"

    data = json.loads(b"".join(admin_client.get(base + ".json").streaming_content))
    [exported] = data["processes"]
    assert exported["id"] == str(process.pk)
    assert [e["type"] for e in exported["events"]] == [e.type for e in events(process)]
    assert admin_client.get(base + ".xml").status_code == 404


def test_filtered_list_and_selected_exports(admin_client, approvals, pizza):
    made = make_instances(3)
    start("pizza", "PIZZA-1")
    url = reverse("admin:processes_processinstance_export", args=["json"])
    data = json.loads(b"".join(admin_client.get(url, {"overdue": "yes"}).streaming_content))
    assert {p["business_key"] for p in data["processes"]} == {"A-0"}

    url = reverse("admin:processes_processinstance_export", args=["csv"])
    text = b"".join(admin_client.get(url, {"definition_key": "approval"}).streaming_content)
    assert {r["business_key"] for r in csv.DictReader(io.StringIO(text.decode()))} == {
        "A-0",
        "A-1",
        "A-2",
    }

    response = admin_client.post(
        reverse(CHANGELIST),
        {"action": "export_json", "_selected_action": [str(made[2].pk), str(made[1].pk)]},
    )
    data = json.loads(b"".join(response.streaming_content))
    assert {p["business_key"] for p in data["processes"]} == {"A-1", "A-2"}
    # the changelist links carry the current filters
    page = admin_client.get(reverse(CHANGELIST), {"definition_key": "approval"})
    assert b"export/csv/?definition_key=approval" in page.content


def test_no_add_change_or_delete_of_instances(admin_client, approvals):
    process = make_instances(1)[0]
    assert admin_client.get(reverse("admin:processes_processinstance_add")).status_code == 403
    change = reverse("admin:processes_processinstance_change", args=[process.pk])
    assert admin_client.post(change, {"state": "completed"}).status_code == 403
    delete = reverse("admin:processes_processinstance_delete", args=[process.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert ProcessInstance.objects.get(pk=process.pk).state == "running"


def test_big_lists_use_the_planner_estimate(admin_client, approvals, postgres, monkeypatch):
    from processes.admin import filters as admin_list

    make_instances(3)
    monkeypatch.setattr(admin_list, "EXACT_COUNT_BELOW", 0)
    with CaptureQueriesContext(connection) as ctx:
        page = admin_client.get(reverse(CHANGELIST))
    assert b'id="fd-estimated"' in page.content
    assert not any("COUNT(" in q["sql"].upper() for q in ctx.captured_queries)
    assert page.context["cl"].result_count >= 1


def test_history_button_of_an_instance(admin_client, approvals):
    process = make_instances(1)[0]
    history = reverse("admin:processes_processinstance_history", args=[process.pk])
    page = admin_client.get(reverse("admin:processes_processinstance_change", args=[process.pk]))
    assert history.encode() in page.content
    # HISTORY leads to the append-only history on the change page, not Django's empty edit log
    response = admin_client.get(history)
    change = reverse("admin:processes_processinstance_change", args=[process.pk])
    assert response.status_code == 302 and response["Location"] == change + "#events-group"
    assert b'id="events-group"' in admin_client.get(change).content


def test_export_with_filters_the_list_does_not_know(admin_client, approvals):
    make_instances(1)
    url = reverse("admin:processes_processinstance_export", args=["json"])
    response = admin_client.get(url, {"definition": "salary"})
    assert response.status_code == 302 and response["Location"] == reverse(CHANGELIST)
    page = admin_client.get(response["Location"])
    assert b"Nothing exported: the list&#x27;s filters are not valid" in page.content
