"""The audit log is append-only, and state can be rebuilt from it."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from processes.models import ImmutableError, ProcessEvent, ProcessInstance
from tests.test_helpers import run_pizza_to_the_end

pytestmark = pytest.mark.django_db


def test_events_refuse_update_and_delete_through_the_orm(pizza):
    process = run_pizza_to_the_end()
    event = process.events.first()
    event.data = {"forged": True}
    with pytest.raises(ImmutableError):
        event.save()
    with pytest.raises(ImmutableError):
        event.delete()
    with pytest.raises(ImmutableError):
        ProcessEvent.objects.filter(process=process).update(data={})
    with pytest.raises(ImmutableError):
        ProcessEvent.objects.filter(process=process).delete()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE processes_processevent SET data = '{}' WHERE process_id = %s",
        "DELETE FROM processes_processevent WHERE process_id = %s",
    ],
)
def test_postgres_trigger_refuses_raw_update_and_delete(postgres, pizza, statement):
    process = run_pizza_to_the_end()
    count = process.events.count()
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement, [process.pk.hex])
    assert process.events.count() == count


def test_verify_history_agrees_with_a_clean_run(pizza, capsys):
    run_pizza_to_the_end()
    call_command("verify_history")
    assert "checked 1 instances, 0 differ" in capsys.readouterr().out


def test_verify_history_finds_a_tampered_state(pizza, capsys):
    process = run_pizza_to_the_end()
    # someone bypasses the engine and rewrites the stored state
    ProcessInstance.objects.filter(pk=process.pk).update(state="running", business_status="LOST")

    with pytest.raises(CommandError, match="1 instances differ"):
        call_command("verify_history")

    out = capsys.readouterr().out
    assert "state: stored 'running', events say 'completed'" in out
    assert "business_status: stored 'LOST', events say 'FOOD DELIVERED'" in out


def test_every_event_names_its_actor(pizza):
    process = run_pizza_to_the_end()
    labels = set(process.events.values_list("actor_type", "actor_label"))
    assert labels == {("api", "test-client"), ("user", "courier")}
