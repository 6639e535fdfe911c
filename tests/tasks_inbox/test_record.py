"""The task page tells the truth: history lines name their actor (a branch not taken is the
system's), one failure is one line, a correction's reason reaches whoever decides next, and
only the paths that person may see."""

import re

import pytest
from django.urls import reverse
from guardian.shortcuts import assign_perm

from processes import engine
from processes.events import Actor
from processes.models import TaskInstance
from tests.factories import UserFactory, complete_task, definition_data
from tests.tasks_inbox.conftest import approval_definition

pytestmark = pytest.mark.django_db
CORRECT = "processes.correct_variables"


def page_of(client, task) -> str:
    return client.get(reverse("tasks_inbox:task", args=[task.pk])).content.decode()


def timeline(html: str) -> list[tuple[str, str]]:
    """(what, who) of each history line."""
    block = html.split('data-testid="timeline"', 1)[1].split("</ol>", 1)[0]
    found = re.findall(
        r"<div>(.*?)</div>\s*<div class=\"muted\"[^>]*>[^<]*· <span class=\"who\">(.*?)</span>",
        block,
        re.S,
    )
    return [(what.strip(), who.strip()) for what, who in found]


def corrections_block(html: str) -> str:
    return html.split('data-testid="corrections"', 1)[1].split("</section>", 1)[0]


@pytest.fixture
def fixer(approval):
    user = UserFactory(username="fixer", is_staff=True)
    assign_perm(CORRECT, user, approval)
    return user


def correct(process, fixer, reason, **values):
    return engine.process_correct_variables(
        process_id=process.pk, actor=Actor.for_user(fixer), set=values, reason=reason
    )


def test_every_history_line_names_its_actor_and_a_branch_not_taken_is_the_systems(
    client, start, people
):
    task = start("EMP-1")
    mia = people["candidate"]
    engine.task_decide(
        task_id=task.pk, actor=Actor.for_user(mia), decision="approve", data={"amount": 9}
    )
    client.force_login(mia)
    lines = timeline(page_of(client, task))
    assert lines[0] == ("Started approval v1", "system")
    assert ("Approve bonus: Approve", "mia") in lines
    assert ("Notify rejection skipped — condition false", "system") in lines
    assert all(who for _, who in lines)  # every line names someone
    assert not any("administrator" in what for what, _ in lines)


def test_a_failure_is_one_line_in_the_inbox_history(client, start, people):
    task = start("EMP-2")
    mia = people["candidate"]
    engine.task_decide(
        task_id=task.pk, actor=Actor.for_user(mia), decision="approve", data={"amount": 9}
    )
    payout = TaskInstance.objects.get(process=task.process, name="record_payout")
    engine.task_start(task_id=payout.pk, actor=Actor.worker())
    engine.task_fail(
        task_id=payout.pk, actor=Actor.worker(), error="accounting down", retryable=False
    )
    client.force_login(mia)
    lines = timeline(page_of(client, task))
    failed = [line for line in lines if "fail" in line[0] or "incident" in line[0]]
    assert failed == [("Record payout failed — an incident is open", "worker")]
    assert "accounting down" not in page_of(client, task)  # the error text is the operators'


def test_the_next_decider_sees_who_corrected_what_and_why(client, start, people, fixer):
    task = start("EMP-3")
    correct(task.process, fixer, "HR ticket 42: the bonus system doubled it", bonus=600)
    client.force_login(people["candidate"])
    html = page_of(client, task)
    notes = corrections_block(html)
    assert "Corrected by <strong>fixer</strong> at " in notes
    assert ": HR ticket 42: the bonus system doubled it" in notes
    assert "Bonus: 1,200.00 → <strong>600.00</strong>" in notes
    # before the form: it is read before deciding
    assert html.index('data-testid="corrections"') < html.index('id="decision-form"')
    assert (
        "Variables corrected: Bonus — “HR ticket 42: the bonus system doubled it”",
        "fixer",
    ) in timeline(html)


def test_a_correction_stays_with_the_decision_it_preceded(client, people, import_definition):
    definition = import_definition(
        definition_data(
            "twostep",
            stages=[
                ("A", [{"task_name": "check", "task_type": "HUMAN", "assigned_to": "managers"}]),
                ("B", [{"task_name": "sign", "task_type": "HUMAN", "assigned_to": "managers"}]),
            ],
        )
    )
    fixer = UserFactory(username="fixer")
    assign_perm(CORRECT, fixer, definition)
    mia = people["candidate"]
    process = engine.process_start(
        definition_key="twostep", business_key="T-1", input={"amount": 1}, actor=Actor.system("t")
    ).process
    check = process.tasks.get(name="check")
    correct(process, fixer, "first fix", amount=2)
    engine.task_decide(task_id=check.pk, actor=Actor.for_user(mia))
    sign = process.tasks.get(name="sign")
    correct(process, fixer, "second fix", amount=3)
    client.force_login(mia)
    checked = corrections_block(page_of(client, check))
    assert "first fix" in checked and "second fix" not in checked
    signing = corrections_block(page_of(client, sign))
    assert "second fix" in signing and "first fix" not in signing


def test_a_correction_shows_only_the_paths_the_decider_may_see(client, people, import_definition):
    data = approval_definition("shown")
    data["stages"][0]["tasks"][0]["show"] = ["employee", "bonus.amount"]
    definition = import_definition(data)
    fixer = UserFactory(username="fixer")
    assign_perm(CORRECT, fixer, definition)
    process = engine.process_start(
        definition_key="shown",
        business_key="S-1",
        input={"employee": "E1", "bonus": {"amount": 100, "plan": "A"}, "salary": 5000},
        actor=Actor.system("t"),
    ).process
    task = process.tasks.get(name="approve_bonus")
    correct(process, fixer, "salary from the new contract", salary=6000)
    correct(process, fixer, "plan and amount", bonus={"amount": 120, "plan": "B"})
    client.force_login(people["candidate"])
    html = page_of(client, task)
    notes = corrections_block(html)
    assert (
        "plan and amount" in notes and "Bonus › amount: 100.00 → <strong>120.00</strong>" in notes
    )
    # the salary is not theirs to see: neither the correction nor its reason, nor the plan
    assert "salary" not in html.lower() and "6,000" not in html
    assert "Plan" not in notes


def test_someone_who_may_not_read_the_task_sees_no_correction(client, start, people, fixer):
    task = start("EMP-4")
    engine.task_claim(task_id=task.pk, actor=Actor.for_user(people["peer"]))
    correct(task.process, fixer, "secret reason", bonus=1)
    client.force_login(people["candidate"])  # in the role, but paul holds the task
    html = page_of(client, task)
    assert 'data-testid="no-read"' in html
    assert "secret reason" not in html and 'data-testid="corrections"' not in html


def test_the_api_task_detail_carries_the_same_corrections(start, people, fixer):
    from tests.api.conftest import client_for

    task = start("EMP-5")
    correct(task.process, fixer, "HR ticket 7", bonus=700)
    answer = client_for(people["candidate"]).get(f"/api/tasks/{task.pk}/")
    assert answer.status_code == 200
    (correction,) = answer.json()["corrections"]
    assert correction["by"] == "fixer" and correction["reason"] == "HR ticket 7"
    assert correction["changes"] == {"bonus": {"before": 1200, "after": 700}}
    assert correction["at"]


def test_a_person_sees_the_waiting_status_on_the_task_page(import_definition, client):
    from tests.processes.test_waiting_status import review_definition

    import_definition(review_definition())
    process = engine.process_start(
        definition_key="review", business_key="R-3", actor=Actor.system("t")
    ).process
    complete_task(process.tasks.get(name="prepare"), {})
    review = process.tasks.get(name="review")
    client.force_login(UserFactory(username="mia", roles=["managers"]))
    page = client.get(reverse("tasks_inbox:task", args=[review.pk])).content.decode()
    assert 'data-testid="business-status">AWAITING APPROVAL<' in page
