"""``db.internals.write``: one engine event's writes in one statement, the same rows as one by one."""

import pytest
from django.db import DatabaseError, transaction
from django.utils import timezone

from processes import engine
from processes.db import core
from processes.db import internals as raw
from processes.events import Actor
from processes.models import ProcessEvent, ProcessInstance, TaskInstance

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("t")


def test_updates_and_event_rows_land_as_written_one_by_one(pizza):
    process = engine.process_start(definition_key="pizza", business_key="W1", actor=SYSTEM).process
    task = TaskInstance.objects.filter(process=process).first()
    task.last_error = "seen"
    process.business_status = "WRITTEN"
    events = [
        ProcessEvent(
            process=process, seq=100 + i, type="TaskStarted", task=task, task_name=task.name,
            actor_type="system", actor_label="t", created_at=timezone.now(), data={"i": i},
        )
        for i in range(3)
    ]  # fmt: skip

    raw.write([(task, ["last_error"]), (process, ["business_status"])], events)

    assert TaskInstance.objects.get(pk=task.pk).last_error == "seen"
    assert ProcessInstance.objects.get(pk=process.pk).business_status == "WRITTEN"
    stored = ProcessEvent.objects.filter(process=process, seq__gte=100).order_by("seq")
    assert [(e.pk, e.data) for e in stored] == [(e.pk, e.data) for e in events]


def test_an_update_that_matches_no_row_refuses_the_whole_write(pizza):
    process = engine.process_start(definition_key="pizza", business_key="W2", actor=SYSTEM).process
    task = TaskInstance.objects.filter(process=process).first()
    gone = TaskInstance(pk=10**12, name="gone")
    task.last_error = "not kept"

    with pytest.raises(DatabaseError, match="matched 0 rows"), transaction.atomic():
        raw.write([(task, ["last_error"]), (gone, ["last_error"])], [])

    assert TaskInstance.objects.get(pk=task.pk).last_error == ""


def stored_row(model, pk):
    """The row as PostgreSQL holds it (SQL NULL apart from JSON null), read past the ORM."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT to_jsonb(t) FROM {core.table(model)} t WHERE id = %s", [pk])
        row = cursor.fetchone()[0]
    return row if isinstance(row, dict) else __import__("json").loads(row)


def test_the_fixed_inserts_store_the_rows_the_orm_stores(postgres, pizza):
    # given a process and a task, once through internals.insert and once through the ORM
    definition = pizza
    now = timezone.now()

    def rows():
        process = ProcessInstance(
            definition=definition, definition_key="pizza", business_key="J-é\"'\\",
            variables={"nested": {"list": [1, 2.5, None, "ü"]}}, created_at=now, updated_at=now,
        )  # fmt: skip
        task = TaskInstance(
            process=process, stage="S", name="t", type="SERVICE", result=None, participants=[],
            created_at=now, wake_at=now,
        )  # fmt: skip
        return process, task

    fixed_process, fixed_task = rows()
    raw.insert([fixed_process])
    raw.insert([fixed_task])
    orm_process, orm_task = rows()
    orm_process.business_key = fixed_process.business_key + "-orm"
    orm_process.save()
    orm_task.save()

    # then both hold the same values, SQL NULL where the ORM writes SQL NULL
    for model, fixed, orm in (
        (ProcessInstance, fixed_process, orm_process),
        (TaskInstance, fixed_task, orm_task),
    ):
        a, b = stored_row(model, fixed.pk), stored_row(model, orm.pk)
        for name in ("id", "process_id", "business_key"):
            a.pop(name, None), b.pop(name, None)
        assert a == b
    assert TaskInstance.objects.get(pk=fixed_task.pk, result__isnull=True)


def test_a_value_too_long_for_its_column_is_refused_not_cut(postgres, pizza):
    process = engine.process_start(definition_key="pizza", business_key="W3", actor=SYSTEM).process
    event = ProcessEvent(
        process=process, seq=500, type="TaskStarted", task_name="x" * 101, actor_type="system",
        actor_label="t", created_at=timezone.now(), data={},
    )  # fmt: skip

    with pytest.raises(DatabaseError, match="too long"), transaction.atomic():
        raw.write([], [event])
