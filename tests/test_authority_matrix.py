"""Who may list, read, claim, decide and delegate a human task: every cell, through the inbox
pages, the API and the admin. The table below is the docs' (docs/guides/administrators.md, "The
authority matrix"); a test checks they are the same.

Each case builds the one situation its person is in (a fresh database per case) on a two-stage
definition: ``check`` (role checkers), then ``approve`` (role managers, assignee from the
variable ``manager``, not by the initiator nor by whoever decided ``check`` nor by the person the
variable ``subject`` names; escalates to directors). Its variables hold a bonus of 777.
"""

import datetime as dt

import pytest
from django.urls import reverse
from guardian.shortcuts import assign_perm

from processes import engine
from processes.events import Actor
from processes.models import ProcessInstance, TaskInstance
from tests.api.conftest import client_for
from tests.factories import UserFactory, definition_data

pytestmark = pytest.mark.django_db

ACTIONS = ("list", "read", "claim", "decide", "delegate")
Y, N = True, False

# person -> what they may do with the approve task, in the inbox and the API alike
EXPECTED = {
    "candidate": (Y, Y, Y, Y, Y),
    "assignee": (Y, Y, N, Y, Y),
    "other role member": (Y, N, N, N, N),
    "delegator after delegation": (Y, Y, N, N, N),
    "delegate": (Y, Y, N, Y, Y),
    "initiator": (Y, Y, N, N, Y),
    "subject": (Y, Y, N, N, Y),
    "previous decider": (Y, Y, N, N, Y),
    "escalation role": (Y, Y, Y, Y, Y),
    "assignee after escalation": (N, Y, N, N, N),
    "operator (view grant)": (N, Y, N, N, N),
    "staff without perms": (N, N, N, N, N),
    "superuser": (N, Y, N, N, N),
    "anonymous": (N, N, N, N, N),
}
# in the admin (an operator's tool): list and read by grant; nobody decides there
ADMIN = {who: (N, N, N, N, N) for who in EXPECTED} | {
    "operator (view grant)": (Y, Y, N, N, N),
    "superuser": (Y, Y, N, N, N),
}
CASES = [
    (who, action, adapter)
    for who in EXPECTED
    for action in ACTIONS
    for adapter in ("inbox", "api", "admin")
]


def matrix_definition():
    return definition_data(
        "matrix",
        stages=[
            (
                "CHECK",
                [{"task_name": "check", "task_type": "HUMAN", "assigned_to": "checkers"}],
            ),
            (
                "APPROVE",
                [
                    {
                        "task_name": "approve",
                        "task_type": "HUMAN",
                        "assigned_to": "managers",
                        "assignee": "manager",
                        "outcomes": ["approve", "reject"],
                        "not_by": ["initiator", "check"],
                        "not_by_var": ["subject"],
                        "escalation": {"after": "P2D", "to": "directors", "notify": False},
                    }
                ],
            ),
        ],
    )


def people():
    managers, directors = ["managers"], ["directors"]
    return {
        "mia": UserFactory(username="mia", roles=managers),
        "paul": UserFactory(username="paul", roles=managers),
        "ada": UserFactory(username="ada", roles=managers),
        "dele": UserFactory(username="dele", roles=managers),
        "ivan": UserFactory(username="ivan", roles=managers),
        "sam": UserFactory(username="sam", roles=managers),
        "pete": UserFactory(username="pete", roles=[*managers, "checkers"]),
        "chuck": UserFactory(username="chuck", roles=["checkers"]),
        "dora": UserFactory(username="dora", roles=directors),
        "dan": UserFactory(username="dan", roles=directors),
        "stan": UserFactory(username="stan", is_staff=True),
        "otto": UserFactory(username="otto", is_staff=True),
        "root": UserFactory(username="root", is_staff=True, is_superuser=True),
    }


def situation(who):
    """Build ``who``'s situation; return (the person or None, the approve task)."""
    definition = engine.definition_import(data=matrix_definition(), actor=Actor.system("t"))[0]
    p = people()
    variables = {"bonus": 777, "subject": "nobody"}
    if who in ("assignee", "other role member", "escalation role", "assignee after escalation"):
        variables["manager"] = "ada"
    if who == "subject":
        variables["subject"] = "sam"
    assign_perm("processes.start_process", p["ivan"], definition)
    starter = Actor.for_user(p["ivan"]) if who == "initiator" else Actor.system("t")
    process = engine.process_start(
        definition_key="matrix", business_key="CASE-1", input=variables, actor=starter
    ).process
    checker = p["pete"] if who == "previous decider" else p["chuck"]
    check = process.tasks.get(name="check")
    engine.task_decide(task_id=check.pk, actor=Actor.for_user(checker))
    task = process.tasks.get(name="approve")
    if who in ("delegator after delegation", "delegate"):
        engine.task_delegate(task_id=task.pk, actor=Actor.for_user(p["mia"]), to_user=p["dele"])
    if who in ("escalation role", "assignee after escalation"):
        task.refresh_from_db()
        engine.task_wake(task_id=task.pk, now=task.wake_at + dt.timedelta(seconds=1))
    if who == "operator (view grant)":
        assign_perm("processes.view_process", p["otto"], definition)
    user = {
        "candidate": "mia",
        "assignee": "ada",
        "other role member": "paul",
        "delegator after delegation": "mia",
        "delegate": "dele",
        "initiator": "ivan",
        "subject": "sam",
        "previous decider": "pete",
        "escalation role": "dora",
        "assignee after escalation": "ada",
        "operator (view grant)": "otto",
        "staff without perms": "stan",
        "superuser": "root",
        "anonymous": None,
    }[who]
    task.refresh_from_db()
    return (p[user] if user else None), task


def delegate_target(user, task):
    """Someone of the task's role the person could hand it to."""
    names = ["dan"] if task.candidate_role == "directors" else ["paul", "mia", "dele"]
    me = user.username if user else None
    holder = task.assignee.username if task.assignee_id else None
    return next(n for n in names if n not in (me, holder))


def observed(who, action, adapter, client):
    """Do ``action`` through ``adapter`` as ``who``; True when it happened (or was shown)."""
    user, task = situation(who)
    before = (task.state, task.claimed_by_id, task.assignee_id, task.process.last_seq)
    if adapter == "inbox":
        if user is not None:
            client.force_login(user)
        result = _inbox(action, user, task, client)
    elif adapter == "api":
        result = _api(action, user, task)
    else:
        if user is not None:
            client.force_login(user)
        result = _admin(action, user, task, client)
    task.refresh_from_db()
    task.process.refresh_from_db()
    after = (task.state, task.claimed_by_id, task.assignee_id, task.process.last_seq)
    if action in ("list", "read"):
        assert after == before, "reading changed the task"
        return result
    if not result:
        assert after == before, f"a refused {action} changed the task"
    return result


def _inbox(action, user, task, client):
    key = task.process.business_key
    if action == "list":
        pages = [
            client.get(reverse("tasks_inbox:inbox") + f"?tab={t}") for t in ("roles", "assigned")
        ]
        return any(p.status_code == 200 and key.encode() in p.content for p in pages)
    url = reverse(f"tasks_inbox:{'task' if action == 'read' else action}", args=[task.pk])
    if action == "read":
        page = client.get(url)
        return page.status_code == 200 and b'data-testid="variables"' in page.content
    if action == "claim":
        client.post(url)
        task.refresh_from_db()
        return user is not None and task.claimed_by_id == user.pk
    if action == "decide":
        client.post(url, {"decision": "approve", "comment": "ok"})
        task.refresh_from_db()
        return user is not None and task.state == "completed" and task.decided_by_id == user.pk
    target = UserFactory(username=delegate_target(user, task))
    client.post(url, {"to": target.pk, "comment": "over to you"})
    task.refresh_from_db()
    return task.assignee_id == target.pk


def _api(action, user, task):
    client = client_for(user)
    if action == "list":
        response = client.get("/api/inbox/")
        return response.status_code == 200 and task.pk in [
            t["id"] for t in response.json()["results"]
        ]
    if action == "read":
        response = client.get(f"/api/tasks/{task.pk}/")
        variables = response.json().get("variables") if response.status_code == 200 else None
        return bool(variables) and variables["bonus"] == 777
    if action == "claim":
        response = client.post(f"/api/tasks/{task.pk}/claim/", {}, format="json")
        return response.status_code == 200 and response.json()["task"]["claimed_by"] == (
            user.username
        )
    if action == "decide":
        response = client.post(
            f"/api/tasks/{task.pk}/complete/", {"decision": "approve"}, format="json"
        )
        return response.status_code == 200
    target = delegate_target(user, task)
    UserFactory(username=target)
    response = client.post(f"/api/tasks/{task.pk}/delegate/", {"to": target}, format="json")
    return response.status_code == 200


def _admin(action, user, task, client):
    process = task.process
    if action == "list":
        page = client.get(reverse("admin:processes_processinstance_changelist"))
        return page.status_code == 200 and process.business_key.encode() in page.content
    if action == "read":
        page = client.get(reverse("admin:processes_processinstance_change", args=[process.pk]))
        return page.status_code == 200 and b"777" in page.content
    # the admin offers no way to claim, decide or delegate a person's task
    url = reverse("admin:processes_processinstance_task_action", args=[process.pk, task.pk, action])
    got = client.get(url).status_code
    posted = client.post(url, {"reason": "try", "decision": "approve"}).status_code
    assert got in (302, 403, 404) and posted in (302, 403, 404)
    return False


@pytest.mark.parametrize(("who", "action", "adapter"), CASES, ids=lambda v: str(v))
def test_matrix_cell(who, action, adapter, client):
    table = ADMIN if adapter == "admin" else EXPECTED
    expected = table[who][ACTIONS.index(action)]
    assert observed(who, action, adapter, client) is expected


def test_the_docs_table_is_this_matrix():
    """The docs' authority matrix (docs/guides/administrators.md) says what this matrix asserts."""
    from pathlib import Path

    page = Path(__file__).resolve().parent.parent / "docs" / "guides" / "administrators.md"
    section = page.read_text().split("<!-- matrix:start -->", 1)[1].split("<!-- matrix:end -->")[0]
    rows = {}
    for line in section.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    mark = {True: "yes", False: "—"}
    for who in EXPECTED:
        inbox = [mark[v] for v in EXPECTED[who]]
        admin = [mark[v] for v in ADMIN[who][:2]]
        assert rows.get(who) == [*inbox, *admin], who
    assert set(rows) == set(EXPECTED)


def test_every_reader_agrees_with_the_rule():
    """The lists' SQL (inbox tabs, API inbox) and the single-task rule give the same answer for
    every person and every task of a varied set."""
    from processes import authority
    from processes.selectors import human_task_with_rights, human_tasks_for
    from tasks_inbox import selectors as inbox

    engine.definition_import(data=matrix_definition(), actor=Actor.system("t"))
    private = matrix_definition()
    private["key"], private["visibility"] = "secret", "private"
    engine.definition_import(data=private, actor=Actor.system("t"))
    p = people()
    for n, key in enumerate(["matrix", "secret"] * 4):
        variables = {"bonus": n, "manager": "ada" if n % 4 == 1 else None, "subject": "sam"}
        process = engine.process_start(
            definition_key=key, business_key=f"K{n}", input=variables, actor=Actor.system("t")
        ).process
        engine.task_decide(
            task_id=process.tasks.get(name="check").pk, actor=Actor.for_user(p["chuck"])
        )
        task = process.tasks.get(name="approve")
        if n % 4 == 2:
            engine.task_claim(task_id=task.pk, actor=Actor.for_user(p["mia"]))
        if n % 4 == 3:
            engine.task_delegate(
                task_id=task.pk, actor=Actor.for_user(p["paul"]), to_user=p["dele"]
            )
        if n == 4:
            engine.task_decide(task_id=task.pk, actor=Actor.for_user(p["mia"]), decision="approve")
    approve = list(TaskInstance.objects.filter(name="approve"))
    assert len(approve) == 8
    for user in p.values():
        api_listed = set(human_tasks_for(user).values_list("pk", flat=True))
        tabs = set()
        for tab in ("roles", "assigned"):
            tabs |= {t.pk for t in inbox.inbox_list(user=user, tab=tab)[:100]}
        for task in approve:
            process = ProcessInstance.objects.get(pk=task.process_id)
            rights = authority.task_rights(
                user, task, process=process, spec=process.definition.parsed()
            )
            assert (task.pk in api_listed) == rights.listed, (user.username, task.pk)
            assert (task.pk in tabs) == rights.listed, (user.username, task.pk)
            found = human_task_with_rights(user, task.pk)
            assert (found is not None) == (rights.see or _operator(user)), (user.username, task.pk)


def _operator(user):
    from processes import authority

    return authority.has_definition_perm(user, authority.SEE, "matrix")
