"""The backup and restore procedure of docs/operations/backup.md, run as written: pg_dump of the
test database while it holds processes in every state, pg_restore into a new database, then
``migrate --check`` and ``verify_history`` there, and every row is there."""

import os
import re
import shutil
import subprocess
import sys
import uuid

import psycopg
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from processes import engine
from processes.events import Actor
from processes.models import Attachment, ProcessInstance
from tests.conftest import ROOT, need, subprocess_env
from tests.factories import UserFactory, complete_task

PAGE = ROOT / "docs" / "operations" / "backup.md"
TABLES = (
    "processes_processdefinition",
    "processes_processinstance",
    "processes_taskinstance",
    "processes_processevent",
    "processes_attachment",
    "auth_user",
)


def documented(block: str) -> str:
    """The commands between ``<!-- block:start -->`` and ``<!-- block:end -->`` of the page."""
    text = PAGE.read_text()
    found = re.search(
        rf"<!-- {block}:start -->\s*```bash\n(.*?)```\s*<!-- {block}:end -->", text, re.S
    )
    assert found, f"no {block} block in {PAGE}"
    return found.group(1)


def run(script: str, env: dict) -> subprocess.CompletedProcess:
    # the docs say .venv/bin/python: the interpreter running these tests is that one (or stands in)
    script = script.replace(".venv/bin/python", sys.executable)
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def counts(url: str) -> dict:
    with psycopg.connect(url) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


@pytest.fixture
def processes_in_every_state(transactional_db, import_definition):
    """Committed data: pizza orders running, completed, failed and cancelled, with a person."""
    need(connection.vendor == "postgresql", "needs PostgreSQL (set DATABASE_URL)")
    need(bool(shutil.which("pg_dump") and shutil.which("pg_restore")), "needs pg_dump/pg_restore")
    import_definition("pizza.json", key="pizza")
    courier = UserFactory(username="rider", roles=["delivery_executive"])
    system = Actor.system("backup test")

    def start(key):
        return engine.process_start(
            definition_key="pizza", business_key=key, input={"size": "L"}, actor=system
        ).process

    start("ORDER-RUNNING")
    done = start("ORDER-DONE")
    while done.tasks.filter(state="scheduled").exists():
        for task in done.tasks.filter(state="scheduled"):
            if task.type == "HUMAN":
                complete_task(task)  # decided by the courier, a member of its role
            else:
                complete_task(task, result={"ok": True}, actor=system)
        done.refresh_from_db()
    failed = start("ORDER-FAILED")
    engine.task_fail(
        task_id=failed.tasks.get(name="confirm_order").pk, actor=system, error="oven broken"
    )
    engine.process_cancel(process_id=start("ORDER-CANCELLED").pk, actor=system, reason="no")
    boss = UserFactory(username="boss", is_staff=True, is_superuser=True)
    engine.attachment_add(
        process_id=ProcessInstance.objects.get(business_key="ORDER-DONE").pk,
        actor=Actor.for_user(boss),
        file=SimpleUploadedFile("receipt.txt", b"Paid in cash, 2026-12-07\n"),
    )
    states = dict(ProcessInstance.objects.values_list("business_key", "state"))
    assert states == {
        "ORDER-RUNNING": "running",
        "ORDER-DONE": "completed",
        "ORDER-FAILED": "failed",
        "ORDER-CANCELLED": "cancelled",
    }
    assert courier.pk


@pytest.mark.postgres
def test_the_documented_backup_and_restore(processes_in_every_state, tmp_path):
    env = subprocess_env()
    source = env["DATABASE_URL"]
    restore_db = f"{connection.settings_dict['NAME']}_restore_{uuid.uuid4().hex[:8]}"
    env.update(
        BACKUP=str(tmp_path / "flowdesk.dump"),
        RESTORE_DB=restore_db,
        RESTORE_URL=source.rsplit("/", 1)[0] + "/" + restore_db,
    )
    try:
        backup = run(documented("backup"), env)
        assert backup.returncode == 0, backup.stderr
        assert os.path.getsize(env["BACKUP"]) > 0

        restored_files = tmp_path / "restored-files"  # the restore's own storage, empty
        restore = run(
            documented("restore"), {**env, "FLOWDESK_ATTACHMENTS_DIR": str(restored_files)}
        )
        assert restore.returncode == 0, restore.stdout + restore.stderr
        assert "checked 4 instances, 0 differ from their history" in restore.stdout
        assert "checked 1 files, 0 missing or changed" in restore.stdout  # the file came back
        blob = Attachment.objects.get().blob
        assert (restored_files / blob).read_bytes() == b"Paid in cash, 2026-12-07\n"

        assert counts(env["RESTORE_URL"]) == counts(source)
        with psycopg.connect(env["RESTORE_URL"]) as conn:
            rows = conn.execute(
                "SELECT business_key, state FROM processes_processinstance ORDER BY business_key"
            ).fetchall()
            assert dict(rows)["ORDER-FAILED"] == "failed" and len(rows) == 4
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute("DELETE FROM processes_processevent")
    finally:
        with psycopg.connect(source, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{restore_db}" WITH (FORCE)')
