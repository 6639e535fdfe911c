"""Retention: closed processes past their definition's retention are archived, proven, deleted."""

import datetime as dt
import json

import pytest
from django.core.files.storage import FileSystemStorage
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from processes import engine
from processes.engine import retention
from processes.events import Actor
from processes.models import (
    DefinitionEvent,
    DefinitionEventType,
    ProcessEvent,
    ProcessInstance,
    TaskInstance,
)
from processes.spec import parse
from processes.spec.fields import parse_retention
from tests.factories import definition_data

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")


@pytest.fixture
def shop(import_definition):
    return import_definition(
        definition_data(
            key="shop",
            retention="P90D",
            stages=[("MAIN", [{"task_name": "pack", "handler": "flowdesk.noop"}])],
        )
    )


def start(key):
    return engine.process_start(
        definition_key="shop", business_key=key, input={"n": key}, actor=ACTOR
    ).process


def close(process):
    engine.process_cancel(process_id=process.pk, actor=ACTOR, reason="done with it")
    process.refresh_from_db()
    return process


def in_days(days):
    return (timezone.now() + dt.timedelta(days=days)).isoformat()


def test_retention_is_an_iso_duration_of_whole_days_or_more():
    assert parse_retention("P7Y").years == 7 and parse_retention("p90d").days == 90
    assert parse_retention("P1Y6M2W").months == 6 and parse_retention("P1Y6M2W").days == 14
    for bad in ("PT5M", "P", "", "7 years", 90, "P-1D"):
        assert parse_retention(bad) is None
    _, errors = parse(definition_data(key="x", retention="PT1H"))
    assert [e.path for e in errors] == ["retention"]
    cutoff = parse_retention("P1M").cutoff(dt.datetime(2026, 3, 31, tzinfo=dt.UTC))
    assert cutoff == dt.datetime(2026, 2, 28, tzinfo=dt.UTC)


def test_the_salary_reference_definition_keeps_cases_seven_years(import_definition):
    salary = import_definition("salary.json", key="salary")
    assert salary.parsed().retention.years == 7


def test_closed_processes_past_retention_are_archived_with_proof_then_deleted(
    shop, archive_dir, capsys
):
    old = [close(start(f"K-{i}")) for i in range(3)]
    running = start("K-open")
    events_before = {
        str(p.pk): list(p.events.order_by("seq").values_list("pk", "seq", "type")) for p in old
    }

    call_command("archive_processes", "--now", in_days(89))
    assert ProcessInstance.objects.count() == 4  # not yet: 89 days < P90D

    call_command("archive_processes", "--now", in_days(91), "--batch", "2")

    out = capsys.readouterr().out
    assert "archived 3 processes in 2 files" in out
    files = sorted(archive_dir.glob("shop/archive-*.jsonl"))
    assert len(files) == 2
    lines = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert {line["process"]["id"] for line in lines} == set(events_before)
    for line in lines:
        exported = [(e["id"], e["seq"], e["type"]) for e in line["events"]]
        assert [tuple(x) for x in events_before[line["process"]["id"]]] == exported
        assert line["proof"]["verify_history"] == []
        assert line["process"]["state"] == "cancelled" and line["tasks"]
        assert retention.check_line(line, {}) == []  # the export proves itself
    assert list(ProcessInstance.objects.values_list("pk", flat=True)) == [running.pk]
    assert not ProcessEvent.objects.exclude(process=running).exists()
    assert not TaskInstance.objects.exclude(process=running).exists()
    audit = DefinitionEvent.objects.filter(type=DefinitionEventType.ARCHIVED)
    assert sum(a.data["processes"] for a in audit) == 3
    assert {a.data["file"] for a in audit} == {f"shop/{f.name}" for f in files}


def test_a_tampered_line_does_not_prove_itself(shop, archive_dir):
    process = close(start("T-1"))
    line, problems = retention.export_line(process)
    assert problems == []
    line["events"][0]["data"]["input"]["n"] = "forged"
    assert "events differ from their digest" in retention.check_line(line, {})
    line["process"]["state"] = "completed"
    assert any(p.startswith("state:") for p in retention.check_line(line, {}))


def test_a_process_its_events_dont_rebuild_is_kept_and_reported(shop, archive_dir, capsys):
    good, bad = close(start("G")), close(start("B"))
    ProcessInstance.objects.filter(pk=bad.pk).update(current_stage="TAMPERED")

    call_command("archive_processes", "--now", in_days(365))

    out = capsys.readouterr().out
    assert f"kept {bad.pk}: verify_history: current_stage" in out
    assert list(ProcessInstance.objects.values_list("pk", flat=True)) == [bad.pk]
    assert not ProcessInstance.objects.filter(pk=good.pk).exists()


class TruncatingStorage(FileSystemStorage):
    """An archive store that loses the end of what it is given (a cut upload)."""

    def _save(self, name, content):
        from django.core.files.base import ContentFile

        return super()._save(name, ContentFile(content.read()[:-10]))


def test_an_archive_that_does_not_read_back_deletes_nothing(shop, storages_at, tmp_path):
    storages_at(
        flowdesk_archive={
            "BACKEND": f"{__name__}.TruncatingStorage",
            "OPTIONS": {"location": str(tmp_path)},
        }
    )
    close(start("X"))
    with pytest.raises(CommandError, match="archive not verified"):
        call_command("archive_processes", "--now", in_days(365))
    assert ProcessInstance.objects.count() == 1 and ProcessEvent.objects.exists()


def test_dry_run_and_bad_arguments(shop, archive_dir, capsys):
    close(start("D"))
    call_command("archive_processes", "--dry-run", "--now", in_days(100))
    assert "shop: 1 due" in capsys.readouterr().out
    assert ProcessInstance.objects.count() == 1
    with pytest.raises(CommandError, match="not an ISO 8601"):
        call_command("archive_processes", "--now", "soon")
    with pytest.raises(CommandError, match="--batch"):
        call_command("archive_processes", "--batch", "0")


def test_definitions_without_retention_are_never_archived(import_definition, archive_dir):
    import_definition(definition_data(key="forever"))
    process = engine.process_start(
        definition_key="forever", business_key="F", input={}, actor=ACTOR
    ).process
    engine.process_cancel(process_id=process.pk, actor=ACTOR, reason="x")
    call_command("archive_processes", "--now", in_days(36500))
    assert ProcessInstance.objects.filter(pk=process.pk).exists()


# --- the append-only trigger: only the owner's flagged purge deletes events ------------------------


def test_deleting_events_without_the_purge_flag_is_refused(postgres, shop):
    process = close(start("P"))
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM processes_processevent WHERE process_id = %s", [process.pk])
    assert ProcessEvent.objects.filter(process=process).exists()


def test_the_purge_flag_does_not_help_a_role_that_does_not_own_the_table(postgres, shop):
    process = close(start("R"))
    role = "flowdesk_t16a_not_owner"
    with connection.cursor() as cursor:
        cursor.execute(f"DROP ROLE IF EXISTS {role}")
        cursor.execute(f"CREATE ROLE {role} NOLOGIN")
        cursor.execute(f"GRANT SELECT, DELETE ON processes_processevent TO {role}")
    try:
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(f"SET LOCAL ROLE {role}")
            cursor.execute("SET LOCAL flowdesk.purge = 'on'")
            cursor.execute("DELETE FROM processes_processevent WHERE process_id = %s", [process.pk])
        assert ProcessEvent.objects.filter(process=process).exists()
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"REVOKE ALL ON processes_processevent FROM {role}")
            cursor.execute(f"DROP ROLE IF EXISTS {role}")


# --- admin, API, events out -------------------------------------------------------------------------


def test_admin_lists_what_is_due_and_the_api_shows_the_retention(shop, admin_client, archive_dir):
    from django.urls import reverse
    from rest_framework.test import APIClient

    from tests.factories import UserFactory

    due = close(start("OLD"))
    ProcessInstance.objects.filter(pk=due.pk).update(
        completed_at=timezone.now() - dt.timedelta(days=91)
    )
    close(start("RECENT"))
    start("OPEN")

    page = admin_client.get(
        reverse("admin:processes_processinstance_changelist"), {"retention": "due"}
    )
    assert [p.business_key for p in page.context["cl"].result_list] == ["OLD"]

    api = APIClient()
    api.force_authenticate(UserFactory(username="root", is_superuser=True))
    assert api.get("/api/definitions/shop/").json()["retention"] == "P90D"


def test_archived_processes_take_their_event_deliveries_with_them(shop, archive_dir):
    from integrations.models import EventDelivery, EventSubscription

    EventSubscription.objects.create(name="s", definition_key="shop", url="http://127.0.0.1:9/")
    gone, kept = close(start("GONE")), start("KEPT")
    assert EventDelivery.objects.filter(process_id=gone.pk).exists()

    call_command("archive_processes", "--now", in_days(365))

    assert not EventDelivery.objects.filter(process_id=gone.pk).exists()
    assert EventDelivery.objects.filter(process_id=kept.pk).exists()


# --- concurrency on PostgreSQL: a replay between the export and the delete -------------------------


class PausingStorage(FileSystemStorage):
    """An archive store that holds the archive run after writing, until the test lets it go."""

    import threading

    written = threading.Event()
    go_on = threading.Event()

    def _save(self, name, content):
        saved = super()._save(name, content)
        PausingStorage.written.set()
        assert PausingStorage.go_on.wait(30)
        return saved


@pytest.mark.django_db(transaction=True)
def test_a_process_replayed_after_its_export_is_kept(postgres, shop, settings, tmp_path):
    import threading

    from django.core.files.storage import storages

    from tests.factories import complete_task

    settings.STORAGES = {
        **settings.STORAGES,
        "flowdesk_archive": {
            "BACKEND": f"{__name__}.PausingStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }
    storages._storages.pop("flowdesk_archive", None)
    storages._backends = None
    PausingStorage.written.clear()
    PausingStorage.go_on.clear()
    done = start("DONE")
    complete_task(done.tasks.get())
    done.refresh_from_db()
    assert done.state == "completed"
    other = close(start("OTHER"))
    reports = []

    def archive():
        try:
            reports.append(
                engine.processes_archive(actor=ACTOR, now=timezone.now() + dt.timedelta(days=365))
            )
        finally:
            connection.close()

    runner = threading.Thread(target=archive)
    runner.start()
    try:
        assert PausingStorage.written.wait(30)
        engine.stage_replay(process_id=done.pk, stage="MAIN", actor=ACTOR, reason="redo")
    finally:
        PausingStorage.go_on.set()
        runner.join(30)
        storages._storages.pop("flowdesk_archive", None)
        storages._backends = None

    [report] = reports
    assert report.archived == [str(other.pk)]
    assert "changed after its export" in report.skipped[str(done.pk)]
    done.refresh_from_db()
    assert done.state == "running" and ProcessEvent.objects.filter(process=done).exists()
    assert not ProcessInstance.objects.filter(pk=other.pk).exists()
