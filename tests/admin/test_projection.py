"""The projection's watermark on real PostgreSQL: an event committed after a higher id is not
lost, and an id whose transaction rolled back is not waited for forever."""

import io

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from processes import dashboard, projections
from processes.models import ProcessEvent, ProjectionState, TaskExecution, TaskInstance
from processes.worker import wait_until
from tests.admin.helpers import start, task
from tests.factories import complete_task, definition_data

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def other_connection(postgres):
    """A second session: an engine transaction still in flight."""
    s = connection.settings_dict
    conn = psycopg.connect(
        host=s["HOST"], port=s["PORT"], user=s["USER"], password=s["PASSWORD"], dbname=s["NAME"]
    )
    yield conn
    conn.close()


@pytest.fixture
def approvals(import_definition):
    import_definition(
        definition_data(
            "appr",
            stages=[("MAIN", [{"task_name": "ok", "task_type": "HUMAN", "assigned_to": "x"}])],
        )
    )
    return [start("appr", f"A{i}") for i in range(2)]


def complete_in_flight(conn, process) -> int:
    """Insert a task_completed event for the process's task, without committing: its id."""
    t = task(process, "ok")
    with conn.cursor() as cursor:
        cursor.execute("SELECT pg_current_xact_id()")  # as the engine: a transaction id first
        cursor.execute(
            "INSERT INTO processes_processevent (process_id, seq, type, task_id, task_name,"
            " actor_type, actor_label, created_at, data)"
            " VALUES (%s, 1000, 'task_completed', %s, 'ok', 'system', 'test', %s, '{}')"
            " RETURNING id",
            [process.pk, t.pk, timezone.now()],
        )
        return cursor.fetchone()[0]


def completed_names():
    return sorted(TaskExecution.objects.values_list("process_id", flat=True))


def test_an_event_committed_late_is_projected(approvals, other_connection):
    first, second = approvals
    # given an event of `first` written but not yet committed, and a later one committed
    late_id = complete_in_flight(other_connection, first)
    complete_task(task(second, "ok"), {})
    assert ProcessEvent.objects.order_by("-id").first().id > late_id

    # when the projection catches up: `second` is there, `first` can't be yet
    projections.catch_up()
    assert completed_names() == [second.pk]
    state = ProjectionState.objects.get(name=projections.TASK_EXECUTIONS)
    assert state.last_event_id > late_id and late_id in [i for i, _ in state.missing]

    # then once it commits, the next catch-up (or dashboard) adds it
    other_connection.commit()
    dash = dashboard.build("appr", days=7)
    assert dash.source == "projection"
    assert sorted(completed_names()) == sorted([first.pk, second.pk])
    assert {f.name: f.completed for f in dash.tasks} == {"ok": 2}
    state.refresh_from_db()
    assert late_id not in [i for i, _ in state.missing]


def test_a_rolled_back_id_is_not_waited_for(approvals, other_connection):
    first, second = approvals
    lost_id = complete_in_flight(other_connection, first)
    complete_task(task(second, "ok"), {})
    projections.catch_up()
    other_connection.rollback()  # the id is never used
    state = ProjectionState.objects.get(name=projections.TASK_EXECUTIONS)
    assert lost_id in [i for i, _ in state.missing]

    # once every transaction running at the time has ended, it is dropped. (Long transactions in
    # other databases of the same server hold the cluster's xmin back: wait for them.)
    xmax = dict(state.missing)[lost_id]

    def xmin():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
            return cursor.fetchone()[0]

    if not wait_until(lambda: xmin() >= xmax, timeout=120, interval=0.5):
        pytest.skip("another session on this server kept a transaction open for 2 minutes")
    projections.catch_up()
    state.refresh_from_db()
    assert lost_id not in [i for i, _ in state.missing]
    assert completed_names() == [second.pk]
    assert TaskInstance.objects.get(process=first, name="ok").state == "scheduled"


def test_setup_creates_the_projection_schedule(postgres):
    from django.core.management import call_command
    from django_q.models import Schedule

    for _ in range(2):  # idempotent
        call_command("setup_flowdesk", stdout=io.StringIO())
    schedule = Schedule.objects.get(name=projections.SCHEDULE_NAME)
    assert schedule.func == "processes.projections.catch_up" and schedule.repeats == -1
