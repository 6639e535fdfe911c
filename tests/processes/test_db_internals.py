"""What ``processes.db.internals`` relies on in Django beyond its public API, pinned: run this
file first at every Django upgrade (docs/architecture/engine.md, "Below the ORM")."""

import datetime as dt
import uuid

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from processes import engine
from processes.db import core, internals
from processes.events import Actor
from processes.models import ProcessDefinition, ProcessEvent, ProcessInstance, TaskInstance

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("t")


def values(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}


def test_from_db_with_deferred_loads_the_rest_on_first_access(pizza):
    # given an instance built from only some of its columns (``from_db`` with ``DEFERRED``)
    definition = internals.partial(ProcessDefinition, id=pizza.pk, key=pizza.key)

    # then the others are deferred, loaded from the row on first access, and it counts as saved
    assert {"spec", "version", "published_at"} <= definition.get_deferred_fields()
    assert "key" not in definition.get_deferred_fields()
    assert definition._state.adding is False and definition._state.db == connection.alias
    assert definition.version == pizza.version and definition.spec == pizza.spec


def test_fetch_gives_the_instances_the_orm_gives(pizza):
    # given a process with JSON, UUID, datetime and foreign-key columns, and its tasks
    process = engine.process_start(
        definition_key="pizza", business_key="F1", input={"a": {"b": [1, None]}}, actor=SYSTEM
    ).process
    sql = f"SELECT {core.columns(ProcessInstance, 'p')} FROM {core.table(ProcessInstance)} p WHERE p.id = %s"

    # when read through fetch (from_db and each column's converters) and through the ORM
    [fetched] = internals.fetch(
        ProcessInstance, sql, [core.prep(ProcessInstance, "id", process.pk)]
    )
    orm = ProcessInstance.objects.get(pk=process.pk)

    # then every column holds the same value of the same type
    assert values(fetched) == values(orm)
    assert {k: type(v) for k, v in values(fetched).items()} == {
        k: type(v) for k, v in values(orm).items()
    }
    assert fetched._state.adding is False
    read_at = connection.ops.adapt_datetimefield_value(orm.created_at)
    assert internals.convert(ProcessInstance, "created_at", read_at) == orm.created_at


def test_insert_gives_keys_and_takes_the_key_of_a_related_row_saved_after_assignment(pizza):
    # given an event assigned a task that had no id yet, then the task inserted
    process = engine.process_start(definition_key="pizza", business_key="F2", actor=SYSTEM).process
    now = timezone.now()
    task = TaskInstance(process=process, stage="S", name="late", type="SERVICE", created_at=now)
    event = ProcessEvent(
        process=process, seq=900, type="TaskStarted", task=task, task_name="late",
        actor_type="system", actor_label="t", created_at=now, data={},
    )  # fmt: skip
    assert event.task_id is None
    internals.insert([task])

    # when the event is inserted
    internals.insert([event])

    # then it points at the task (as bulk_create would), and both are saved rows with their ids
    assert event.pk is not None and event._state.adding is False
    assert ProcessEvent.objects.get(pk=event.pk).task_id == task.pk
    assert event.task is task  # still the same object: no query


def test_insert_refuses_a_related_row_without_a_key(pizza):
    process = engine.process_start(definition_key="pizza", business_key="F3", actor=SYSTEM).process
    task = TaskInstance(process=process, stage="S", name="never", type="SERVICE")
    event = ProcessEvent(
        process=process, seq=901, type="TaskStarted", task=task, task_name="never",
        actor_type="system", actor_label="t", created_at=timezone.now(), data={},
    )  # fmt: skip

    with pytest.raises(ValueError, match="unsaved related object 'task'"), transaction.atomic():
        internals.insert([event])


def test_pre_save_and_get_db_prep_save_write_what_save_writes(pizza):
    # given a process changed in memory: a datetime, a JSON document, a text
    process = engine.process_start(definition_key="pizza", business_key="F4", actor=SYSTEM).process
    when = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC)
    process.updated_at, process.variables, process.business_status = when, {"x": [1.5]}, "S"

    # when written through internals.write, and a twin through save(update_fields=...)
    internals.write([(process, ["updated_at", "variables", "business_status"])], [])
    twin = engine.process_start(definition_key="pizza", business_key="F5", actor=SYSTEM).process
    twin.updated_at, twin.variables, twin.business_status = when, {"x": [1.5]}, "S"
    twin.save(update_fields=["updated_at", "variables", "business_status"])

    # then the rows agree
    names = ("updated_at", "variables", "business_status")
    assert ProcessInstance.objects.filter(pk=process.pk).values(*names).get() == (
        ProcessInstance.objects.filter(pk=twin.pk).values(*names).get()
    )
    with pytest.raises(DatabaseError, match="matched 0 rows"), transaction.atomic():
        internals.write([(ProcessInstance(pk=uuid.uuid4()), ["business_status"])], [])
