"""Retention and ``business_key_unique: "ever"`` compose: an archived business key stays taken,
for every way a process starts (API, batch, CSV, CLI, seed event, a parent's child)."""

import datetime as dt

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from processes import engine
from processes.events import Actor
from processes.models import ArchivedBusinessKey, ProcessInstance, TaskState
from tests.api.conftest import client_for
from tests.factories import UserFactory, definition_data

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")


def payout_data(unique="ever"):
    return definition_data(
        "payout",
        business_key_unique=unique,
        retention="P90D",
        stages=[("PAY", [{"task_name": "pay", "handler": "flowdesk.noop"}])],
    )


@pytest.fixture
def payout(import_definition):
    return import_definition(payout_data())


@pytest.fixture
def root(db):
    return UserFactory(username="root", is_staff=True, is_superuser=True)


def paid_and_archived(key="E011-2026-06"):
    """A payout case that ran (here: cancelled, a closed case all the same), then archived."""
    process = engine.process_start(definition_key="payout", business_key=key, actor=ACTOR).process
    engine.process_cancel(process_id=process.pk, actor=ACTOR, reason="paid by hand")
    later = (timezone.now() + dt.timedelta(days=91)).isoformat()
    call_command("archive_processes", "--now", later)
    assert not ProcessInstance.objects.filter(pk=process.pk).exists()
    return process


def test_an_archived_key_stays_taken_and_the_api_answers_with_the_archived_case(
    payout, archive_dir, root
):
    old = paid_and_archived()
    [file] = [p.relative_to(archive_dir).as_posix() for p in archive_dir.glob("payout/*.jsonl")]
    response = client_for(root).post(
        "/api/processes/", {"definition": "payout", "business_key": "E011-2026-06"}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["state"], body["archived"]) == (str(old.pk), "cancelled", True)
    assert (body["definition"], body["version"], body["business_key"]) == (
        "payout",
        1,
        "E011-2026-06",
    )
    assert body["archive"]["file"] == file
    assert not ProcessInstance.objects.exists()  # nothing started


def test_a_batch_answers_existing_for_an_archived_key(payout, archive_dir, root, admin_client):
    old = paid_and_archived()
    items = [{"business_key": "E011-2026-06"}, {"business_key": "E012-2026-06"}]
    body = (
        client_for(root)
        .post("/api/processes/batch/", {"definition": "payout", "items": items}, format="json")
        .json()
    )
    assert body["summary"] == {"created": 1, "existing": 1, "invalid": 0}
    archived, new = body["items"]
    assert (archived["status"], archived["process"], archived["archived"]) == (
        200,
        str(old.pk),
        True,
    )
    assert archived["archive"]["file"].startswith("payout/archive-")
    assert (new["status"], new["archived"], new["archive"]) == (201, False, None)
    # the admin's CSV batch says so per row
    csv = "business_key\nE011-2026-06\n"
    page = admin_client.post(
        reverse("admin:processes_processdefinition_batch", args=[payout.pk]),
        {"file": SimpleUploadedFile("run.csv", csv.encode(), "text/csv")},
    ).content.decode()
    assert "0 started, 1 already there, 0 invalid" in page
    assert "cancelled, archived in <code>payout/archive-" in page
    assert ProcessInstance.objects.filter(business_key="E011-2026-06").count() == 0


def test_the_cli_and_a_seed_start_event_start_nothing_either(payout, archive_dir, root, capsys):
    old = paid_and_archived()
    call_command("start_process", "payout", "E011-2026-06")
    assert f"already ran {old.pk} payout:E011-2026-06 (cancelled, archived in payout/" in (
        capsys.readouterr().out
    )
    response = client_for(root).post(
        "/api/events/",
        {"event_name": "StartWorkflow", "definition": "payout", "business_ref_no": "E011-2026-06"},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["duplicate"] is True
    assert response.json()["process"]["id"] == str(old.pk)
    assert not ProcessInstance.objects.exists()


def test_a_parent_cannot_start_a_child_on_an_archived_key(
    payout, archive_dir, import_definition, django_capture_on_commit_callbacks
):
    paid_and_archived()
    import_definition(
        definition_data(
            "monthly",
            stages=[
                (
                    "RUN",
                    [
                        {
                            "task_name": "pay",
                            "task_type": "PROCESS",
                            "process": {"definition": "payout", "business_key": "who"},
                        }
                    ],
                )
            ],
        )
    )
    with django_capture_on_commit_callbacks(execute=True):
        parent = engine.process_start(
            definition_key="monthly",
            business_key="2026-06",
            input={"who": "E011-2026-06"},
            actor=ACTOR,
        ).process
    task = parent.tasks.get(name="pay")
    assert task.state == TaskState.FAILED
    assert task.last_error == "payout 'E011-2026-06' already has an instance"
    assert not ProcessInstance.objects.filter(definition_key="payout").exists()


def test_only_keys_started_under_ever_are_kept(import_definition, archive_dir, root):
    import_definition(payout_data(unique="active"))
    paid_and_archived()
    assert not ArchivedBusinessKey.objects.exists()
    response = client_for(root).post(
        "/api/processes/", {"definition": "payout", "business_key": "E011-2026-06"}, format="json"
    )
    assert response.status_code == 201
