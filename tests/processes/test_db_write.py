"""``db.core.write``: one engine event's writes in one statement, the same rows as one by one."""

import pytest
from django.db import DatabaseError, transaction
from django.utils import timezone

from processes import engine
from processes.db import core as raw
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
