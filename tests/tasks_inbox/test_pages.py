"""The inbox pages: tabs, sort, search, pagination, the task page, forms and their errors."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from processes import engine
from processes.events import Actor
from processes.models import EventType, ProcessEvent, TaskInstance
from tasks_inbox import selectors
from tasks_inbox.views import PAGE_SIZE
from tests.factories import GroupFactory
from tests.tasks_inbox.conftest import approval_definition

INBOX = reverse("tasks_inbox:inbox")


def task_url(task, action=None):
    return reverse(f"tasks_inbox:{action or 'task'}", args=[task.pk])


def keys_in(response):
    return [t.process.business_key for t in response.context["page"]]


@pytest.fixture
def mia_client(client, people):
    client.force_login(people["candidate"])
    return client


def test_login_page_logs_in_and_lands_on_the_inbox(client, people):
    page = client.get("/accounts/login/")
    assert page.status_code == 200 and b'name="username"' in page.content
    bad = client.post("/accounts/login/", {"username": "mia", "password": "wrong"})
    assert bad.status_code == 200 and b"errorlist" in bad.content
    good = client.post("/accounts/login/", {"username": "mia", "password": "pw"})
    assert good.status_code == 302 and good["Location"] == "/inbox/"
    assert client.get("/").status_code == 302
    out = client.post("/accounts/logout/")
    assert out.status_code == 302
    assert client.get(INBOX).status_code == 302


def test_tabs_sort_and_search(mia_client, start, people):
    mia = people["candidate"]
    a, b, c = start("EMP-A"), start("EMP-B"), start("EMP-C")
    # b is due first, c is the oldest
    TaskInstance.objects.filter(pk=b.pk).update(due_at=timezone.now() + dt.timedelta(hours=1))
    TaskInstance.objects.filter(pk=c.pk).update(
        scheduled_at=timezone.now() - dt.timedelta(days=9),
        due_at=timezone.now() - dt.timedelta(hours=1),
    )
    engine.task_claim(task_id=a.pk, actor=Actor.for_user(mia))

    roles = mia_client.get(INBOX)
    assert roles.context["tab"] == "roles"
    assert keys_in(roles) == ["EMP-C", "EMP-B", "EMP-A"]
    assert b"overdue" in roles.content
    assert keys_in(mia_client.get(INBOX + "?sort=-due")) == ["EMP-A", "EMP-B", "EMP-C"]
    assert keys_in(mia_client.get(INBOX + "?sort=age"))[0] == "EMP-C"
    assert keys_in(mia_client.get(INBOX + "?sort=-age"))[-1] == "EMP-C"
    assert keys_in(mia_client.get(INBOX + "?tab=assigned")) == ["EMP-A"]
    assert keys_in(mia_client.get(INBOX + "?tab=overdue")) == ["EMP-C"]
    assert keys_in(mia_client.get(INBOX + "?q=emp-b")) == ["EMP-B"]
    empty = mia_client.get(INBOX + "?q=nothing-like-this")
    assert keys_in(empty) == []
    assert "Nothing matches “nothing-like-this” with these filters" in empty.content.decode()


def test_done_by_me(mia_client, start, people):
    task = start("EMP-D")
    engine.task_decide(
        task_id=task.pk,
        actor=Actor.for_user(people["candidate"]),
        decision="reject",
        data={"amount": 0},
    )
    done = mia_client.get(INBOX + "?tab=done")
    assert keys_in(done) == ["EMP-D"]
    assert b">Reject<" in done.content
    assert keys_in(mia_client.get(INBOX)) == []


def test_pagination(mia_client, start):
    for i in range(PAGE_SIZE + 3):
        start(f"EMP-{i:03d}")
    first = mia_client.get(INBOX)
    assert len(keys_in(first)) == PAGE_SIZE
    assert b'rel="next"' in first.content
    second = mia_client.get(INBOX + "?page=2")
    assert len(keys_in(second)) == 3
    assert not set(keys_in(first)) & set(keys_in(second))


@pytest.mark.parametrize(
    "query",
    [
        "?page=abc",
        "?page=99999",
        "?page=-1",
        "?tab=nope",
        "?sort=drop table",
        "?q=" + "x" * 5000,
    ],
)
def test_bad_query_parameters_never_fail(mia_client, start, query):
    start()
    assert mia_client.get(INBOX + query).status_code == 200


@pytest.mark.parametrize("query", ["?q=%00", "?page=%00"])
def test_a_nul_byte_in_the_query_is_a_plain_400(mia_client, start, query):
    start()
    answer = mia_client.get(INBOX + query)
    assert answer.status_code == 400 and b"NUL" in answer.content.upper()


def test_bad_urls_and_methods(mia_client, start):
    task = start()
    assert mia_client.get("/inbox/tasks/abc/").status_code == 404
    assert mia_client.get("/inbox/tasks/99999999999999999999999/").status_code == 404
    assert mia_client.get("/inbox/tasks/987654/").status_code == 404
    assert mia_client.post("/inbox/tasks/99999999999999999999999/claim/").status_code == 404
    visit = mia_client.get(task_url(task, "claim"))  # a form's target, visited: back to the task
    assert (visit.status_code, visit["Location"]) == (302, task_url(task))
    refused = mia_client.post(task_url(task))
    assert refused.status_code == 405 and b"Method Not Allowed" in refused.content
    # a service task is not an inbox task
    service = TaskInstance.objects.get(process=task.process, name="record_payout")
    assert mia_client.get(task_url(service)).status_code == 404


def test_task_page_shows_the_process_readably(mia_client, start):
    task = start("EMP-V", variables={"salary_base": {"amount": 4200.5}, "bonus": 1200, "ok": True})
    page = mia_client.get(task_url(task)).content.decode()
    assert "Approve the bonus" in page
    assert "EMP-V" in page and "REVIEW" in page
    assert 'data-testid="process-state">running<' in page  # the state's one word
    assert "4,200.50" in page and "1,200.00" in page and "Yes" in page
    assert "{&quot;" not in page and '{"' not in page  # no raw JSON
    assert "Approve bonus is waiting for managers" in page  # the timeline
    assert 'name="decision" value="approve"' in page and 'name="amount"' in page


def test_decision_moves_the_process_on(mia_client, start, people):
    task = start("EMP-OK")
    response = mia_client.post(
        task_url(task, "decide"),
        {"decision": "approve", "amount": "1500.50", "pay_date": "2026-12-01", "comment": "Fine"},
    )
    assert response.status_code == 302 and response["Location"] == INBOX + "?tab=done"
    task.refresh_from_db()
    process = task.process
    assert task.state == "completed" and task.decided_by == people["candidate"]
    assert process.variables["approve_bonus"] == {
        "amount": "1500.5",  # a decimal: canonical text, never a float
        "pay_date": "2026-12-01",
        "comment": "Fine",
        "decision": "approve",
        "decided_by": "mia",
    }
    assert process.current_stage == "PAYOUT" and process.business_status == "Bonus reviewed"
    states = dict(process.tasks.values_list("name", "state"))
    assert states == {
        "approve_bonus": "completed",
        "record_payout": "scheduled",
        "notify_rejection": "skipped",
    }
    done = mia_client.get(response["Location"])
    assert "Approve: EMP-OK — the process has moved on." in done.content.decode()
    # the closed task stays readable, without the form
    page = mia_client.get(task_url(task)).content.decode()
    assert 'id="decision-form"' not in page and "Fine" in page


@pytest.mark.parametrize(
    ("post", "field", "message"),
    [
        ({"decision": "approve"}, "amount", "this field is required"),
        ({"decision": "approve", "amount": "-3"}, "amount", "must be at least 0"),
        ({"decision": "approve", "amount": "lots"}, "amount", "must be a number"),
        ({"decision": "approve", "amount": "1", "pay_date": "31/12"}, "pay_date", "YYYY-MM-DD"),
        ({"decision": "approve", "amount": "1\x00"}, "amount", "Null characters are not allowed"),
        ({"amount": "1"}, "decision", "must be one of: approve, reject"),
        ({"decision": "maybe", "amount": "1"}, "decision", "must be one of: approve, reject"),
        ({"decision": "approve", "amount": "1", "comment": "x" * 3000}, "comment", "at most"),
    ],
)
def test_form_errors_are_shown_next_to_their_field(mia_client, start, post, field, message):
    task = start()
    response = mia_client.post(task_url(task, "decide"), post)
    assert response.status_code == 400
    form = response.context["decision_form"]
    assert any(message in e for e in form.errors[field]), form.errors
    html = response.content.decode()
    block = html.split(f'data-field="{field}"', 1)[1].split('class="field', 1)[0]
    assert "errorlist" in block
    task.refresh_from_db()
    assert task.state == "scheduled"


def test_delegate_to_a_member_and_errors(mia_client, start, people):
    task = start()
    other = people["other"]
    bad = mia_client.post(task_url(task, "delegate"), {"to": other.pk})
    assert bad.status_code == 400
    assert "Select a valid choice" in bad.context["delegate_form"].errors["to"][0]
    missing = mia_client.post(task_url(task, "delegate"), {"to": ""})
    assert missing.status_code == 400
    ok = mia_client.post(
        task_url(task, "delegate"), {"to": people["peer"].pk, "comment": "You know them"}
    )
    assert ok.status_code == 302
    task.refresh_from_db()
    assert task.assignee == people["peer"]
    event = ProcessEvent.objects.get(task=task, type=EventType.TASK_DELEGATED)
    assert event.actor_user == people["candidate"]
    assert event.data == {"to": "paul", "comment": "You know them"}


def test_claim_and_release_through_the_page(mia_client, start, people):
    task = start()
    page = mia_client.post(task_url(task, "claim"), follow=True).content.decode()
    assert "You claimed this task" in page and "claimed by you" in page
    page = mia_client.post(task_url(task, "release"), follow=True).content.decode()
    assert "back with its role" in page
    types = list(
        ProcessEvent.objects.filter(task=task).order_by("seq").values_list("type", flat=True)
    )
    assert types[-2:] == [EventType.TASK_CLAIMED, EventType.TASK_RELEASED]


def test_deciding_a_decided_task_says_who_won(mia_client, start, people):
    task = start()
    engine.task_decide(
        task_id=task.pk,
        actor=Actor.for_user(people["peer"]),
        decision="reject",
        data={"amount": 0},
    )
    response = mia_client.post(
        task_url(task, "decide"), {"decision": "approve", "amount": "5"}, follow=True
    )
    html = response.content.decode()
    assert (
        "Your decision was not recorded: task &#x27;approve_bonus&#x27; is already completed by paul"
        in html
    )
    duplicate = ProcessEvent.objects.get(task=task, type=EventType.TASK_DUPLICATE)
    assert duplicate.actor_user == people["candidate"]  # nothing is lost


@pytest.mark.parametrize("tab", list(selectors.TABS))
def test_inbox_query_count_is_constant(client, start, people, django_assert_num_queries, tab):
    mia = people["candidate"]
    client.force_login(mia)
    url = f"{INBOX}?tab={tab}"

    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url).status_code == 200
        return len(ctx.captured_queries)

    def add(n, offset):
        for i in range(n):
            task = start(f"EMP-{offset + i}")
            if tab == "assigned":
                engine.task_claim(task_id=task.pk, actor=Actor.for_user(mia))
            elif tab == "overdue":
                TaskInstance.objects.filter(pk=task.pk).update(
                    due_at=timezone.now() - dt.timedelta(hours=1)
                )
            elif tab == "done":
                engine.task_decide(
                    task_id=task.pk,
                    actor=Actor.for_user(mia),
                    decision="approve",
                    data={"amount": 1},
                )

    add(1, 0)
    one = count()
    add(30, 100)
    # session, user, roles, the process filter's choices (their counts from the open tasks, then
    # their names), the three tab counts, count, page (My roles: page ids in one UNION ALL, then
    # the rows), one's absence, one's language and time zone; no names to read when nothing is open, as on the done tab here
    with django_assert_num_queries(one):
        client.get(url)
    assert one == {"roles": 13, "done": 11}.get(tab, 12)
    assert len(client.get(url).context["page"]) == PAGE_SIZE


@pytest.mark.parametrize("sort", list(selectors.SORTS))
def test_role_pages_merge_like_one_ordered_query(start, people, sort):
    """*My roles* reads each role in index order and merges: same rows as the plain query."""
    mia = people["candidate"]
    mia.groups.add(*[GroupFactory(name=n) for n in ("r2", "r3")])
    now = timezone.now()
    for i in range(24):
        task = start(f"EMP-{i:02d}")
        TaskInstance.objects.filter(pk=task.pk).update(
            candidate_role=["managers", "r2", "r3"][i % 3],
            due_at=None if i % 7 == 0 else now + dt.timedelta(hours=(i * 5) % 11),
            scheduled_at=now - dt.timedelta(minutes=(i * 3) % 8),
        )
    roles = selectors.role_names(mia)
    assert roles == ["managers", "r2", "r3"]
    plain = list(selectors.inbox_tasks(user=mia, tab="roles", sort=sort, roles=roles))
    merged = selectors.inbox_list(user=mia, tab="roles", sort=sort, roles=roles)
    assert isinstance(merged, selectors.RolePages)
    assert merged.count() == len(plain) == 24
    for start_at, stop in ((0, 5), (5, 10), (20, 25), (0, 24)):
        assert [t.pk for t in merged[start_at:stop]] == [t.pk for t in plain[start_at:stop]]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("amount", "1e400", "must be between -1e15 and 1e15"),
        ("amount", "-1e400", "must be between -1e15 and 1e15"),
        ("amount", "9" * 400, "must be between -1e15 and 1e15"),
        ("amount", "NaN", "must be a finite number"),
        ("amount", "Infinity", "must be a finite number"),
        ("count", "1e999999", "must be between -1e15 and 1e15"),
    ],
)
def test_huge_or_non_finite_numbers_are_form_errors_not_500(
    mia_client, import_definition, field, value, message
):
    # given a decision form whose number fields have no max
    data = approval_definition(key="unbounded")
    data["stages"][0]["tasks"][0]["form"] = [
        {"name": "amount", "type": "decimal"},
        {"name": "count", "type": "integer"},
    ]
    import_definition(data)
    task = engine.process_start(
        definition_key="unbounded", business_key="EMP-BIG", actor=Actor.system("test")
    ).process.tasks.get(name="approve_bonus")

    # when a huge or non-finite number is sent
    response = mia_client.post(task_url(task, "decide"), {"decision": "approve", field: value})

    # then it is an error next to the field, and the task is still open
    assert response.status_code == 400
    assert any(message in e for e in response.context["decision_form"].errors[field])
    task.refresh_from_db()
    assert task.state == "scheduled"
    # and a sane value still goes through
    ok = mia_client.post(task_url(task, "decide"), {"decision": "approve", field: "12"})
    assert ok.status_code == 302
    task.refresh_from_db()
    # (a decimal is stored as its canonical text, an integer as a number)
    assert task.state == "completed" and task.result[field] == (12 if field == "count" else "12")
