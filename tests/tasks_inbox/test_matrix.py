"""Permission matrix: who sees a human task and who may act on it, through pages and selectors.

| who        | inbox tab     | task page | claim |
|------------|---------------|-----------|-------|
| candidate  | My roles      | 200       | yes   |
| assignee   | Assigned to me| 200       | yes   |  (not in the role: the user permission)
| delegate   | Assigned to me| 200       | yes   |
| other role | —             | 404       | 404   |
| staff      | —             | 404       | 404   |  (no global bypass: supervisors use the admin)
| superuser  | —             | 404       | 404   |
| anonymous  | login         | login     | login |
"""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.urls import reverse

from processes import engine
from processes.events import Actor
from processes.models import EventType, ProcessEvent
from tasks_inbox import selectors
from tests.factories import UserFactory
from tests.tasks_inbox.conftest import approval_definition

ALLOWED = {"candidate": "roles", "assignee": "assigned", "delegate": "assigned"}
DENIED = ["other", "staff", "superuser"]


@pytest.fixture
def matrix(import_definition, people):
    """One open task with a candidate role, an assignee outside the role, and a delegate."""
    import_definition(approval_definition(key="matrix", assignee="manager"))
    ada = UserFactory(username="ada")  # the assignee, not a member of "managers"
    process = engine.process_start(
        definition_key="matrix",
        business_key="EMP-42",
        input={"manager": "ada", "bonus": 900},
        actor=Actor.system("test"),
    ).process
    task = process.tasks.get(name="approve_bonus")
    # the candidate delegates a second task to the delegate
    other = engine.process_start(
        definition_key="matrix",
        business_key="EMP-43",
        input={},
        actor=Actor.system("test"),
    ).process.tasks.get(name="approve_bonus")
    delegate = UserFactory(username="dele", roles=["managers"])
    engine.task_delegate(
        task_id=other.pk, actor=Actor.for_user(people["candidate"]), to_user=delegate
    )
    users = {**people, "assignee": ada, "delegate": delegate}
    tasks = {"candidate": task, "assignee": task, "delegate": other}
    return users, tasks, task


@pytest.mark.parametrize("who", list(ALLOWED))
def test_allowed_people_see_the_task_and_may_act(client, matrix, who):
    users, tasks, _ = matrix
    user, task = users[who], tasks[who]
    # selectors
    assert selectors.can_act(user, task)
    assert task.pk in set(
        selectors.inbox_tasks(user=user, tab=ALLOWED[who]).values_list("pk", flat=True)
    )
    # pages
    client.force_login(user)
    page = client.get(reverse("tasks_inbox:inbox") + f"?tab={ALLOWED[who]}")
    assert page.status_code == 200
    assert task.process.business_key.encode() in page.content
    detail = client.get(reverse("tasks_inbox:task", args=[task.pk]))
    assert detail.status_code == 200
    assert b'id="decision-form"' in detail.content
    claimed = client.post(reverse("tasks_inbox:claim", args=[task.pk]))
    assert claimed.status_code == 302
    task.refresh_from_db()
    assert task.claimed_by == user
    event = ProcessEvent.objects.filter(process=task.process).order_by("-seq").first()
    assert (event.type, event.actor_user) == (EventType.TASK_CLAIMED, user)


@pytest.mark.parametrize("who", DENIED)
def test_everyone_else_gets_404_and_changes_nothing(client, matrix, who):
    users, _, task = matrix
    user = users[who]
    assert not selectors.can_act(user, task)
    assert selectors.task_for_user(user=user, task_id=task.pk) is None
    for tab in selectors.TABS:
        assert not selectors.inbox_tasks(user=user, tab=tab).exists()
    client.force_login(user)
    page = client.get(reverse("tasks_inbox:inbox"))
    assert page.status_code == 200
    assert b"EMP-42" not in page.content
    assert client.get(reverse("tasks_inbox:task", args=[task.pk])).status_code == 404
    seq = task.process.last_seq
    for action in ("claim", "release", "decide", "delegate"):
        response = client.post(
            reverse(f"tasks_inbox:{action}", args=[task.pk]),
            {"decision": "approve", "amount": "1", "to": users["candidate"].pk},
        )
        assert response.status_code == 404, action
    task.refresh_from_db()
    task.process.refresh_from_db()
    assert task.state == "scheduled" and task.claimed_by is None
    assert task.process.last_seq == seq


def test_anonymous_is_sent_to_login_and_changes_nothing(client, matrix):
    _, _, task = matrix
    for url in (reverse("tasks_inbox:inbox"), reverse("tasks_inbox:task", args=[task.pk])):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")
    response = client.post(reverse("tasks_inbox:decide", args=[task.pk]), {"decision": "approve"})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    task.refresh_from_db()
    assert task.state == "scheduled"
    assert not selectors.can_act(AnonymousUser(), task)


def test_claimed_task_is_locked_to_its_claimant(client, matrix):
    users, _, task = matrix
    mia, paul = users["candidate"], users["peer"]
    engine.task_claim(task_id=task.pk, actor=Actor.for_user(mia))
    client.force_login(paul)
    page = client.get(reverse("tasks_inbox:task", args=[task.pk]))
    assert page.status_code == 200
    assert b"claimed by <strong>mia</strong>" in page.content
    assert b'id="decision-form"' not in page.content
    response = client.post(
        reverse("tasks_inbox:decide", args=[task.pk]),
        {"decision": "approve", "amount": "10"},
        follow=True,
    )
    assert "task is claimed by mia" in response.content.decode()
    task.refresh_from_db()
    assert task.state == "scheduled"
    # release returns it to the role: paul may now claim it
    engine.task_release(task_id=task.pk, actor=Actor.for_user(mia))
    client.post(reverse("tasks_inbox:claim", args=[task.pk]))
    task.refresh_from_db()
    assert task.claimed_by == paul
