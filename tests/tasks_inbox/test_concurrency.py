"""Two people decide the same task at the same moment, from two OS processes on PostgreSQL.

Each child is a ``manage.py shell`` with its own database connection to the test database; it
logs in with Django's test client and POSTs the decision form. The parent holds the process row
lock until both requests are waiting on it, then lets go: they really are in flight together.
"""

import json
import subprocess
import sys
import time

import pytest
from django.db import connection, transaction

from processes.models import EventType, ProcessEvent, ProcessInstance
from tests.conftest import ROOT, need, subprocess_env

CHILD = r"""
import json, os, sys, time
from django.test.utils import setup_test_environment
setup_test_environment()
from django.contrib.auth import get_user_model
from django.test import Client

import faulthandler
faulthandler.dump_traceback_later(240, exit=True)  # never hang the suite
user = get_user_model().objects.get(username=os.environ["INBOX_USER"])
client = Client()
client.force_login(user)
response = client.post(
    os.environ["INBOX_URL"],
    {"decision": os.environ["INBOX_DECISION"], "amount": "100", "comment": user.username},
    follow=True,
)
messages = [str(m) for m in response.context["messages"]] if response.context else []
print("RESULT " + json.dumps({"user": user.username, "status": response.status_code,
                              "path": response.request["PATH_INFO"], "messages": messages}))
"""


def waiting_on_locks() -> int:
    with connection.cursor() as cursor:
        # pg_stat_activity is a snapshot taken once per transaction: take a fresh one.
        cursor.execute("select pg_stat_clear_snapshot()")
        cursor.execute(
            "select count(*) from pg_stat_activity "
            "where datname = current_database() and wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


def activity_now() -> list:
    with connection.cursor() as cursor:
        cursor.execute(
            "select pid, state, wait_event_type, wait_event, left(query, 120) "
            "from pg_stat_activity where datname = current_database()"
        )
        return cursor.fetchall()


@pytest.mark.postgres
def test_two_simultaneous_decisions_one_wins_one_is_told(transactional_db, start, people):
    need(connection.vendor == "postgresql", "needs PostgreSQL (set DATABASE_URL)")
    task = start("EMP-RACE")
    url = f"/inbox/tasks/{task.pk}/decide/"
    children = []
    with transaction.atomic():
        # hold the process row: both decisions will queue behind this lock
        ProcessInstance.objects.select_for_update().get(pk=task.process_id)
        for username, decision in (("mia", "approve"), ("paul", "reject")):
            env = subprocess_env(
                INBOX_USER=username,
                INBOX_URL=url,
                INBOX_DECISION=decision,
            )
            children.append(
                subprocess.Popen(
                    [sys.executable, "manage.py", "shell", "-c", CHILD],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        deadline = time.monotonic() + 120
        while waiting_on_locks() < 2:
            if any(c.poll() is not None for c in children) or time.monotonic() > deadline:
                activity = activity_now()
                for c in children:
                    c.kill()
                outputs = [c.communicate(timeout=30) for c in children]
                pytest.fail(f"children did not both reach the lock: {activity} {outputs}")
            time.sleep(0.05)
    results = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        line = next(li for li in out.splitlines() if li.startswith("RESULT "))
        results.append(json.loads(line.removeprefix("RESULT ")))

    # exactly one decision counts
    task.refresh_from_db()
    assert task.state == "completed"
    winner = task.decided_by.username
    by_user = {r["user"]: r for r in results}
    loser = ({"mia", "paul"} - {winner}).pop()
    assert by_user[winner]["path"] == "/inbox/"
    assert any("the process has moved on" in m for m in by_user[winner]["messages"])
    # the other one is told, clearly, on the task page
    assert by_user[loser]["status"] == 200
    assert by_user[loser]["path"] == url.removesuffix("decide/")
    assert by_user[loser]["messages"] == [
        f"Your decision was not recorded: task 'approve_bonus' is already completed by {winner}."
    ]
    # and nothing is lost: one completion, the late attempt in the history
    events = ProcessEvent.objects.filter(task=task)
    assert events.filter(type=EventType.TASK_COMPLETED).count() == 1
    late = events.get(type=EventType.TASK_DUPLICATE)
    assert late.actor_user.username == loser
    assert late.data["data"]["comment"] == loser
    expected = "approve" if winner == "mia" else "reject"
    assert task.result["decision"] == expected
