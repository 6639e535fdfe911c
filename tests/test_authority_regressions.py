"""Each way around the human decision found in the demo, refused now with a clear 4xx (or a plain
page in the inbox), changing nothing. One test per finding of the "Authority" issue."""

import json

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from guardian.shortcuts import assign_perm

from processes import engine
from processes.events import Actor
from processes.models import DefinitionComponent, ProcessDefinition, ProcessInstance
from tests.api.conftest import OPERATE, START, VIEW, client_for, grant
from tests.conftest import DEFINITIONS
from tests.factories import UserFactory, definition_data

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("test")


def salary_data(**changes):
    data = json.loads((DEFINITIONS / "salary.json").read_text())
    data.update(changes)
    return data


@pytest.fixture
def salary():
    return engine.definition_import(data=salary_data(), actor=SYSTEM)[0]


@pytest.fixture
def managers(db):
    return {
        "alice": UserFactory(username="alice", roles=["managers"]),
        "bob": UserFactory(username="bob", roles=["managers"]),
        "carl": UserFactory(username="carl", roles=["managers"]),
    }


def salary_case(employee="E004", period="2026-11", manager="bob", actor=SYSTEM):
    """A salary process waiting for its manager: the two service steps done as the systems
    would answer (the manager and the employee's login come from accounting)."""
    process = engine.process_start(
        definition_key="salary",
        business_key=f"{employee}-{period}",
        input={"employee_id": employee, "period": period},
        actor=actor,
    ).process
    base = {
        "employee_id": employee,
        "period": period,
        "employee_name": "Ada",
        "team": "Engineering",
        "manager": manager,
        "employee_username": employee.lower(),
        "amount": "3411.00",
        "currency": "EUR",
    }
    bonus = {
        "employee_id": employee,
        "period": period,
        "amount": "409.32",
        "currency": "EUR",
        "rating": "meets",
    }
    for name, result in (("salary_base", base), ("bonus", bonus)):
        task = process.tasks.get(name=name)
        engine.task_start(task_id=task.pk, actor=Actor.worker("t"))
        engine.task_complete(task_id=task.pk, actor=Actor.worker("t"), result=result)
    return process


def approval(process):
    return process.tasks.get(name="approve_bonus")


def snapshot(process):
    process.refresh_from_db()
    return (
        process.state,
        process.last_seq,
        json.dumps(process.variables, sort_keys=True),
        sorted(process.tasks.values_list("name", "state", "assignee_id", "claimed_by_id")),
    )


# --- any manager decided any team's money --------------------------------------------------------


def test_alice_cannot_open_or_approve_bobs_engineering_bonus(client, salary, managers):
    process = salary_case("E004", manager="bob")
    task = approval(process)
    assert task.assignee == managers["bob"]
    before = snapshot(process)
    client.force_login(managers["alice"])
    # not in her inbox, its page is a 404, her decision changes nothing
    assert b"E004-2026-11" not in client.get(reverse("tasks_inbox:inbox")).content
    assert client.get(reverse("tasks_inbox:task", args=[task.pk])).status_code == 404
    post = client.post(reverse("tasks_inbox:decide", args=[task.pk]), {"decision": "approve"})
    assert post.status_code == 404
    api = client_for(managers["alice"])
    assert api.get(f"/api/tasks/{task.pk}/").status_code == 404
    response = api.post(f"/api/tasks/{task.pk}/complete/", {"decision": "approve"}, format="json")
    assert response.status_code == 404
    assert task.pk not in [t["id"] for t in api.get("/api/inbox/").json()["results"]]
    assert snapshot(process) == before


def test_bob_cannot_read_alices_closed_tasks(client, salary, managers):
    process = salary_case("E003", manager="alice")
    task = approval(process)
    engine.task_decide(task_id=task.pk, actor=Actor.for_user(managers["alice"]), decision="approve")
    client.force_login(managers["bob"])
    assert client.get(reverse("tasks_inbox:task", args=[task.pk])).status_code == 404
    assert client_for(managers["bob"]).get(f"/api/tasks/{task.pk}/").status_code == 404
    # alice still reads what she decided
    client.force_login(managers["alice"])
    assert client.get(reverse("tasks_inbox:task", args=[task.pk])).status_code == 200


def test_after_delegating_bob_has_no_decision_form(client, salary, managers):
    process = salary_case("E004", manager="bob")
    task = approval(process)
    engine.task_delegate(
        task_id=task.pk, actor=Actor.for_user(managers["bob"]), to_user=managers["carl"]
    )
    before = snapshot(process)
    client.force_login(managers["bob"])
    page = client.get(reverse("tasks_inbox:task", args=[task.pk]))
    assert page.status_code == 200  # he had it: he may look
    assert b'id="decision-form"' not in page.content
    assert b"assigned to <strong>carl</strong>" in page.content
    response = client.post(
        reverse("tasks_inbox:decide", args=[task.pk]), {"decision": "approve"}, follow=True
    )
    assert "assigned to carl; only they can decide it" in response.content.decode()
    api = client_for(managers["bob"])
    response = api.post(f"/api/tasks/{task.pk}/complete/", {"decision": "approve"}, format="json")
    assert response.status_code == 403
    assert "assigned to carl" in response.json()["error"]["message"]
    assert snapshot(process) == before


# --- the seed event path was a side door ---------------------------------------------------------


def operator_client(salary):
    user = UserFactory(username="erp")
    grant(user, salary, START, VIEW, OPERATE)
    return client_for(user)


def event(name, task, data=None, ref="E004-2026-11"):
    body = {"event_name": name, "component_name": "SALARY", "business_ref_no": ref}
    body["task_name"] = task
    if data is not None:
        body["data"] = data
    return body


@pytest.mark.parametrize("decision", ["approve", "maybe"])
@pytest.mark.parametrize("name", ["TaskCompleted", "TaskFailed", "TaskPending"])
def test_seed_events_for_a_human_task_are_refused(salary, managers, decision, name):
    process = salary_case("E004", manager="bob")
    before = snapshot(process)
    data = {"decision": decision, "adjusted_amount": 999999999.99, "employee_id": "E0999"}
    response = operator_client(salary).post(
        "/api/events/", event(name, "approve_bonus", data), format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["message"] == (
        "human tasks are decided in the inbox or through /api/tasks/{id}/complete/"
    )
    assert snapshot(process) == before


def test_a_task_result_never_lands_over_the_input_or_another_tasks_result(import_definition):
    definition = import_definition(
        definition_data(
            "ext",
            component_name="EXT",
            stages=[("S", [{"task_name": "lookup", "task_queue": "q"}, {"task_name": "other"}])],
        )
    )
    process = engine.process_start(
        definition_key="ext", business_key="X1", input={"employee_id": "E004"}, actor=SYSTEM
    ).process
    client = operator_client(definition)
    body = event("TaskCompleted", "lookup", {"employee_id": "E0999", "other": "x"}, ref="X1")
    body["component_name"] = "EXT"
    assert client.post("/api/events/", body, format="json").status_code == 202
    process.refresh_from_db()
    assert process.variables == {
        "employee_id": "E004",
        "lookup": {"employee_id": "E0999", "other": "x"},
    }


def test_an_external_decision_follows_the_inbox_rules(salary, managers):
    data = salary_data(key="salary-ext", component_name="SALARY_EXT")
    data["stages"][1]["tasks"][0]["external_decision"] = True
    definition = engine.definition_import(data=data, actor=SYSTEM)[0]
    process = engine.process_start(
        definition_key="salary-ext",
        business_key="E006-2026-11",
        input={"employee_id": "E006", "period": "2026-11"},
        actor=SYSTEM,
    ).process
    answers = {
        "salary_base": {
            **{"employee_id": "E006", "period": "2026-11", "amount": "3000.00"},
            **{"employee_name": "Eve", "team": "Engineering", "manager": "bob", "currency": "EUR"},
        },
        "bonus": {"employee_id": "E006", "period": "2026-11", "amount": "1.00", "currency": "EUR"},
    }
    for name in ("salary_base", "bonus"):
        task = process.tasks.get(name=name)
        engine.task_complete(task_id=task.pk, actor=SYSTEM, result=answers[name])
    client = operator_client(definition)

    def send(data):
        body = event("TaskCompleted", "approve_bonus", data, ref="E006-2026-11")
        body["component_name"] = "SALARY_EXT"
        return client.post("/api/events/", body, format="json")

    before = snapshot(process)
    maybe = send({"decision": "maybe"})
    assert maybe.status_code == 400
    assert "decision" in maybe.json()["error"]["fields"]
    too_much = send({"decision": "approve", "adjusted_amount": 999999999.99})
    assert too_much.status_code == 400
    assert "data.adjusted_amount" in too_much.json()["error"]["fields"]
    stray = send({"decision": "approve", "employee_id": "E0999"})
    assert stray.status_code == 400
    assert stray.json()["error"]["fields"]["data.employee_id"] == ["unknown field"]
    assert snapshot(process) == before
    assert send({"decision": "approve", "adjusted_amount": 400}).status_code == 202
    process.refresh_from_db()
    assert process.variables["approve_bonus"]["decision"] == "approve"
    assert process.variables["employee_id"] == "E006"


# --- one definition took over another's events ---------------------------------------------------


def test_a_component_name_belongs_to_one_key(pizza, import_definition):
    superuser = UserFactory(username="root", is_superuser=True, is_staff=True)
    client = client_for(superuser)
    engine.process_start(definition_key="pizza", business_key="ORDER-9", actor=SYSTEM)
    rogue = definition_data("rogue", component_name="ITALIAN")
    response = client.post("/api/definitions/", rogue, format="json")
    assert response.status_code == 409
    assert "belongs to definition 'pizza'" in response.json()["error"]["message"]
    assert not ProcessDefinition.objects.filter(key="rogue").exists()
    # new orders and running ones still reach the pizza
    shop = UserFactory(username="shop")
    grant(shop, pizza)
    started = client_for(shop).post(
        "/api/events/",
        {"event_name": "StartWorkflow", "component_name": "ITALIAN", "business_ref_no": "O-2"},
        format="json",
    )
    assert started.status_code == 202 and started.json()["process"]["definition"] == "pizza"
    # the seed template imported again by its component name: the next version of the same key
    template = json.loads((DEFINITIONS / "pizza.json").read_text())
    template["description"] = "v2"
    response = client.post("/api/definitions/", template, format="json")
    assert response.status_code == 201
    assert response.json() == {"key": "pizza", "version": 2, "created": True}
    assert DefinitionComponent.objects.get(component_name="ITALIAN").key == "pizza"


# --- rights were too coarse ----------------------------------------------------------------------


def test_is_staff_alone_grants_nothing_in_the_api(pizza):
    stan = UserFactory(username="stan", is_staff=True)
    process = engine.process_start(definition_key="pizza", business_key="O-1", actor=SYSTEM)
    client = client_for(stan)
    pk = process.process.pk
    assert client.post(f"/api/processes/{pk}/cancel/", {}, format="json").status_code == 404
    assert client.get(f"/api/processes/{pk}/").status_code == 404
    assert client.get("/api/processes/").json()["count"] == 0
    response = client.post("/api/definitions/", definition_data("sneaky"), format="json")
    assert response.status_code == 403
    process.process.refresh_from_db()
    assert process.process.state == "running"


def test_the_global_add_permission_creates_keys_but_publishes_no_other_key(salary):
    author = UserFactory(username="author")
    author.user_permissions.add(Permission.objects.get(codename="add_processdefinition"))
    client = client_for(author)
    no_approval = salary_data()
    no_approval["stages"] = [s for s in no_approval["stages"] if s["stage_name"] != "APPROVE"]
    response = client.post("/api/definitions/", no_approval, format="json")
    assert response.status_code == 403
    assert "may not publish versions of 'salary'" in response.json()["error"]["message"]
    assert ProcessDefinition.objects.filter(key="salary").count() == 1
    # a new key is theirs: they may publish its next versions too
    assert client.post("/api/definitions/", definition_data("mine"), format="json").status_code == (
        201
    )
    v2 = definition_data("mine", description="v2")
    assert client.post("/api/definitions/", v2, format="json").status_code == 201
    # and publish_definition on salary lets someone else publish salary's next version
    editor = UserFactory(username="editor")
    assign_perm("processes.publish_definition", editor, salary)
    response = client_for(editor).post("/api/definitions/", no_approval, format="json")
    assert response.status_code == 201 and response.json()["version"] == 2


# --- the same salary case ran twice -------------------------------------------------------------


def test_a_paid_salary_case_is_never_started_again(salary, managers):
    process = salary_case("E001", period="2026-10", manager="alice")
    engine.task_decide(
        task_id=approval(process).pk, actor=Actor.for_user(managers["alice"]), decision="approve"
    )
    payout = process.tasks.get(name="record_payout")
    paid = {"payout_id": "P1", "employee_id": "E001", "period": "2026-10"}
    paid |= {"salary_base": "3411.00", "bonus": "409.32", "total": "3820.32"}
    engine.task_complete(task_id=payout.pk, actor=SYSTEM, result=paid)
    process.refresh_from_db()
    assert (process.state, process.business_status) == ("completed", "PAID")
    starter = UserFactory(username="hr")
    grant(starter, salary, START, VIEW)
    response = client_for(starter).post(
        "/api/processes/",
        {
            "definition": "salary",
            "business_key": "E001-2026-10",
            "input": {"employee_id": "E001", "period": "2026-10"},
        },
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["id"] == str(process.pk)
    assert ProcessInstance.objects.filter(business_key="E001-2026-10").count() == 1


# --- separation of duties in plain words ---------------------------------------------------------


def test_the_initiator_and_the_employee_are_told_why_they_may_not_decide(client, salary, managers):
    alice = managers["alice"]
    assign_perm("processes.start_process", alice, salary)
    # alice starts a case of her own team: she is its manager and its initiator
    process = salary_case("E005", manager="alice", actor=Actor.for_user(alice))
    task = approval(process)
    assert task.assignee is None  # barred, so the task went to the role
    scheduled = process.events.get(type="task_scheduled", task_name="approve_bonus")
    assert scheduled.data["assignee_barred"]["user"] == "alice"
    client.force_login(alice)
    page = client.get(reverse("tasks_inbox:task", args=[task.pk])).content.decode()
    assert "You started this process, so someone else must decide this task." in page
    assert 'id="decision-form"' not in page
    # the employee themself, a manager too
    e007 = UserFactory(username="e007", roles=["managers"])
    own = approval(salary_case("E007", manager="bob"))
    client.force_login(e007)
    page = client.get(reverse("tasks_inbox:task", args=[own.pk]))
    assert page.status_code == 404  # private: assigned to bob
    engine.task_delegate(task_id=own.pk, actor=Actor.for_user(managers["bob"]), to_user=alice)
    response = client_for(alice).post(
        f"/api/tasks/{own.pk}/delegate/", {"to": "e007"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["to"] == [
        "This decision is about them, so someone else must make it."
    ]
