"""The CLI: import_definition, start_process, sweep_timers, setup_flowdesk."""

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from processes.models import ProcessDefinition, ProcessInstance
from tests.conftest import DEFINITIONS

pytestmark = pytest.mark.django_db


def test_import_definition_publishes_and_is_idempotent(capsys):
    path = str(DEFINITIONS / "pizza.json")
    call_command("import_definition", path, key="pizza")
    call_command("import_definition", path, key="pizza")
    out = capsys.readouterr().out
    assert "imported pizza v1 (published)" in out
    assert "unchanged pizza v1 (published)" in out
    assert ProcessDefinition.objects.get(key="pizza").component_name == "ITALIAN"


def test_import_definition_reports_every_error_with_its_path(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "workflow_name": "Bad",
                "stages": [
                    {
                        "stage_name": "S",
                        "stage_order": 1,
                        "tasks": [{"task_name": "a", "parent_task": ["x"]}],
                    },
                    {"stage_name": "T", "stage_order": 1, "tasks": []},
                ],
            }
        )
    )
    with pytest.raises(CommandError, match="not imported"):
        call_command("import_definition", str(bad))
    err = capsys.readouterr().err
    assert "stages[0].tasks[0].parent_task: unknown task 'x'" in err
    assert "stages[1].stage_order: duplicate stage_order 1 (also stages[0])" in err
    assert not ProcessDefinition.objects.exists()


@pytest.mark.parametrize(
    ("content", "message"), [(None, "no such file"), ("{nope", "not valid JSON")]
)
def test_import_definition_bad_files(tmp_path, content, message):
    path = tmp_path / "d.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(CommandError, match=message):
        call_command("import_definition", str(path))


def test_start_process_and_its_errors(pizza, capsys):
    call_command("start_process", "pizza", "ORDER-9", "--input", '{"customer": "ann"}')
    call_command("start_process", "pizza", "ORDER-9")
    out = capsys.readouterr().out
    assert "started" in out and "already active" in out
    assert ProcessInstance.objects.get().variables == {"customer": "ann"}
    with pytest.raises(CommandError, match="no published definition 'nope'"):
        call_command("start_process", "nope", "X")
    with pytest.raises(CommandError, match="--input is not valid JSON"):
        call_command("start_process", "pizza", "X", "--input", "{")
    with pytest.raises(CommandError, match="input must be a JSON object"):
        call_command("start_process", "pizza", "X", "--input", "[1]")


def test_setup_creates_one_sweep_schedule(capsys):
    from django_q.models import Schedule

    call_command("setup_flowdesk")
    call_command("setup_flowdesk")
    assert Schedule.objects.filter(name="flowdesk.sweep_timers").count() == 1
    # and the outboxes' sweeps, which the integrations create when told (the ``setup`` hook)
    outboxes = Schedule.objects.filter(name__in=["flowdesk.events_out", "flowdesk.sms_outbox"])
    assert sorted(outboxes.values_list("name", "func")) == [
        ("flowdesk.events_out", "integrations.events_out.sweep"),
        ("flowdesk.sms_outbox", "integrations.alerts.retry_pending"),
    ]
    assert "schedule flowdesk.sms_outbox: every 1 min" in capsys.readouterr().out
    assert ProcessDefinition.objects.filter(key="pizza", status="published").count() == 1
    call_command("sweep_timers")
    assert "sweep: nothing due" in capsys.readouterr().out


def test_setup_keeps_a_version_an_admin_published(system_actor):
    """A restart of the demo must not replace the admin's v2 with the shipped file again."""
    from processes import engine

    call_command("setup_flowdesk", stdout=io.StringIO())
    shipped = ProcessDefinition.objects.get(key="salary")
    edited = {**shipped.spec, "description": "Edited in the admin"}
    engine.definition_import(data=edited, key="salary", actor=system_actor)
    out = io.StringIO()
    call_command("setup_flowdesk", stdout=out)
    newest = ProcessDefinition.objects.filter(key="salary").order_by("-version").first()
    assert (newest.version, newest.spec["description"]) == (2, "Edited in the admin")
    assert "kept salary v2" in out.getvalue()
    # --update imports the file again, on purpose
    call_command("setup_flowdesk", "--update", stdout=io.StringIO())
    newest = ProcessDefinition.objects.filter(key="salary").order_by("-version").first()
    assert newest.version == 3 and newest.spec["description"] == shipped.spec["description"]


def test_demo_refuses_a_taken_port():
    """A second demo on a taken port fails at once with one clear line, before touching data."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        addr = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(CommandError, match=f"{addr} is already in use.*FLOWDESK_DEMO_ADDR"):
            call_command("demo", "--serve", "--addr", addr)
