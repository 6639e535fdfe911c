"""Call activities that compose safely: the call graph has no cycle, chains are bounded at run
time, a start never answers 500 after its commit, and grants compose (a child needs its
initiator's ``start_process``)."""

import json

import pytest
from django.urls import reverse

from integrations.models import AlertRecipient
from integrations.sms.backends import locmem
from processes import engine, spec
from processes.engine import subprocess as engine_subprocess
from processes.errors import Forbidden
from processes.events import Actor
from processes.models import DefinitionStatus, ProcessDefinition, ProcessInstance, TaskState
from tests.api.conftest import START, VIEW, client_for, grant
from tests.factories import UserFactory, definition_data

pytestmark = pytest.mark.django_db(transaction=True)
SYSTEM = Actor.system("test")
PUBLISH = "processes.publish_definition"


def leaf(key, **extra):
    """A definition that calls nothing: one service step."""
    return definition_data(key, stages=[("WORK", [{"task_name": "work", "handler": "t.work"}])])


def caller(key, callee, *, version=None, for_each=None, before=None):
    """A definition whose stage CALL's task ``call`` starts ``callee`` (``before``: a task ahead
    of it in the stage, so the call is ``stages[0].tasks[1]``)."""
    call = {"definition": callee}
    if version is not None:
        call["version"] = version
    if for_each is not None:
        call.update(for_each=for_each, input={"n": "item"})
    tasks = [{"task_name": "call", "task_type": "PROCESS", "process": call}]
    if before:
        tasks.insert(0, {"task_name": before, "handler": "flowdesk.noop"})
    return definition_data(key, stages=[("CALL", tasks)])


@pytest.fixture(autouse=True)
def work_handler():
    from processes import steps

    steps.registry.register("t.work", lambda ctx: {"done": True})
    yield
    steps.registry.unregister("t.work")


@pytest.fixture
def sms(settings):
    """The on-call admin's phone (the locmem SMS provider)."""
    settings.FLOWDESK_SMS_BACKEND = "integrations.sms.backends.locmem.SmsBackend"
    settings.FLOWDESK_SMS_RATE_LIMIT = 100
    locmem.outbox.clear()
    AlertRecipient.objects.create(
        user=UserFactory(username="oncall", is_staff=True), phone="+33612345678"
    )
    return locmem.outbox


def publish(data, actor=SYSTEM):
    return engine.definition_import(data=data, actor=actor)[0]


def published_before_the_rule(data, version=1):
    """A definition stored as published by an earlier release, which checked no call graph."""
    parsed = spec.parse_or_raise(data)
    definition = ProcessDefinition(
        key=parsed.key, version=version, name=parsed.name, spec=data, description=""
    )
    definition.publish()
    definition.save()
    return definition


def refusal(data, actor=SYSTEM) -> list[tuple[str, str]]:
    with pytest.raises(spec.SpecValidationError) as refused:
        publish(data, actor)
    return [(e.path, e.message) for e in refused.value.errors]


# --- the call graph -------------------------------------------------------------------------------


def test_a_definition_calling_itself_is_refused_at_the_calls_path():
    assert refusal(caller("a", "a", before="prepare")) == [
        ("stages[0].tasks[1].process.definition", "calls itself: a → a")
    ]
    assert not ProcessDefinition.objects.filter(key="a").exists()


def test_a_to_b_to_a_and_longer_cycles_are_refused():
    publish(caller("b", "a"))  # a does not exist yet: nothing to start, no cycle
    assert refusal(caller("a", "b")) == [
        ("stages[0].tasks[0].process.definition", "calls itself: a → b → a")
    ]
    publish(caller("d", "c"))
    publish(caller("c", "e"))
    assert refusal(caller("e", "d")) == [
        ("stages[0].tasks[0].process.definition", "calls itself: e → d → c → e")
    ]
    assert not ProcessDefinition.objects.filter(key__in=["a", "e"]).exists()


def test_the_version_being_published_is_the_newest_one_its_callers_reach():
    # given a (calling nothing) and b calling the newest a
    publish(leaf("a"))
    publish(caller("b", "a"))
    # when a new version of a calls b, b would now start that new version: a cycle
    assert refusal(caller("a", "b")) == [
        ("stages[0].tasks[0].process.definition", "calls itself: a → b → a")
    ]
    assert ProcessDefinition.objects.filter(key="a").count() == 1


def test_a_pinned_older_version_is_no_cycle_and_a_pinned_cycle_is():
    publish(leaf("a"))  # a v1 calls nothing
    publish(caller("b", "a", version=1))
    second = publish(caller("a", "b"))  # a v2 → b → a v1: ends
    assert (second.version, second.status) == (2, DefinitionStatus.PUBLISHED)
    # b pinned to a v2, which calls the newest b: this one
    assert refusal(caller("b", "a", version=2)) == [
        ("stages[0].tasks[0].process.definition", "calls itself: b → a → b")
    ]


def test_a_call_into_an_older_cycle_is_refused_too():
    # given x and y calling each other, stored before publishing checked the call graph
    published_before_the_rule(caller("x", "y"))
    published_before_the_rule(caller("y", "x"))
    assert refusal(caller("z", "x")) == [
        ("stages[0].tasks[0].process.definition", "leads into a cycle: z → x → y → x")
    ]


def test_a_draft_with_a_cycle_is_kept_but_not_published(client):
    draft, _ = engine.definition_import(data=caller("a", "a"), actor=SYSTEM, publish=False)
    with pytest.raises(spec.SpecValidationError, match=r"calls itself: a → a"):
        engine.definition_publish(definition_id=draft.pk, actor=SYSTEM)
    draft.refresh_from_db()
    assert draft.status == DefinitionStatus.DRAFT


def test_the_api_answers_400_and_the_admin_an_error(client):
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    publish(caller("b", "a"))
    response = client_for(root).post("/api/definitions/", caller("a", "b"), format="json")
    assert response.status_code == 400
    assert response.json()["error"]["errors"] == [
        {"path": "stages[0].tasks[0].process.definition", "message": "calls itself: a → b → a"}
    ]
    client.force_login(root)
    page = client.post(
        reverse("admin:processes_processdefinition_add"),
        {"spec_text": json.dumps(caller("a", "b")), "_publish": "publish"},
        follow=True,
    )
    assert "calls itself: a → b → a" in page.content.decode()
    assert not ProcessDefinition.objects.filter(key="a").exists()


# --- run-time guards ------------------------------------------------------------------------------


def test_a_self_calling_definition_from_before_stops_at_the_depth_limit_and_answers_201(sms):
    # given a definition that calls itself, published before publishing refused cycles
    published_before_the_rule(caller("loop", "loop"))
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    # when it is started through the API
    response = client_for(root).post(
        "/api/processes/", {"definition": "loop", "business_key": "L1"}, format="json"
    )
    # then the start answers with what it committed, and only FLOWDESK_MAX_CALL_DEPTH levels run
    assert response.status_code == 201
    assert ProcessInstance.objects.count() == 1 + 5
    deepest = ProcessInstance.objects.get(business_key="L1" + ":call" * 5)
    task = deepest.tasks.get(name="call")
    assert task.state == TaskState.FAILED
    assert "over FLOWDESK_MAX_CALL_DEPTH (5)" in task.last_error
    deepest.refresh_from_db()
    assert deepest.state == "failed"
    # one SMS per incident: the deepest one, then each parent whose child has one
    assert len(sms) == 6 and "FLOWDESK_MAX_CALL_DEPTH" in sms[0].body


def test_the_depth_limit_is_a_setting(settings):
    settings.FLOWDESK_MAX_CALL_DEPTH = 2
    publish(leaf("c"))
    publish(caller("b", "c"))
    publish(caller("a", "b"))
    publish(caller("top", "a"))
    engine.process_start(definition_key="a", business_key="A1", actor=SYSTEM)  # a → b → c
    assert ProcessInstance.objects.count() == 3
    engine.process_start(definition_key="top", business_key="T1", actor=SYSTEM)
    # top → a → b, and b's child would be 3 levels down
    assert ProcessInstance.objects.count() == 3 + 3
    b = ProcessInstance.objects.get(business_key="T1:call:call")
    assert "would be 3 levels below" in b.tasks.get(name="call").last_error
    assert not ProcessInstance.objects.filter(business_key="T1:call:call:call").exists()


def test_for_each_over_its_cap_fails_the_task_and_starts_nothing(settings, sms):
    settings.FLOWDESK_MAX_FOR_EACH = 3
    publish(leaf("child"))
    publish(caller("fan", "child", for_each="items"))
    three = engine.process_start(
        definition_key="fan", business_key="F3", input={"items": [1, 2, 3]}, actor=SYSTEM
    ).process
    assert ProcessInstance.objects.filter(parent=three).count() == 3
    four = engine.process_start(
        definition_key="fan", business_key="F4", input={"items": [1, 2, 3, 4]}, actor=SYSTEM
    ).process
    four.refresh_from_db()
    task = four.tasks.get(name="call")
    assert (four.state, task.state) == ("failed", TaskState.FAILED)
    assert task.last_error == (
        "for_each: 4 items in 'items', over FLOWDESK_MAX_FOR_EACH (3); nothing was started"
    )
    assert not ProcessInstance.objects.filter(parent=four).exists()
    assert len(sms) == 1


def test_the_default_limits():
    from django.conf import settings

    assert (settings.FLOWDESK_MAX_CALL_DEPTH, settings.FLOWDESK_MAX_FOR_EACH) == (5, 1000)


def test_a_failure_while_starting_children_is_an_incident_not_a_500(monkeypatch, sms):
    publish(leaf("child"))
    publish(caller("parent", "child"))

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(engine_subprocess, "_build_instance", broken)
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    response = client_for(root).post(
        "/api/processes/", {"definition": "parent", "business_key": "P1"}, format="json"
    )
    assert response.status_code == 201
    parent = ProcessInstance.objects.get(business_key="P1")
    task = parent.tasks.get(name="call")
    assert (parent.state, task.state) == ("failed", TaskState.FAILED)
    assert task.last_error == "could not start the children: RuntimeError: disk on fire"
    assert len(sms) == 1


# --- grants compose -------------------------------------------------------------------------------


@pytest.fixture
def pizza_publisher():
    """pat may publish and start pizza, nothing else; salary exists."""
    pizza = publish(leaf("pizza"))
    publish(leaf("salary"))
    pat = UserFactory(username="pat", is_staff=True)
    grant(pat, pizza, PUBLISH, START, VIEW)
    return pat


def test_publishing_a_call_needs_start_on_the_called_definition(pizza_publisher, client):
    pat = pizza_publisher
    data = caller("pizza", "salary", before="bake")
    with pytest.raises(Forbidden) as refused:
        publish(data, Actor.for_user(pat))
    assert str(refused.value) == (
        "stages[0].tasks[1].process.definition: you may not start processes of 'salary', so "
        "you may not publish a definition that calls it"
    )
    # the API says so too, and the admin
    response = client_for(pat).post("/api/definitions/", data, format="json")
    assert response.status_code == 403
    assert "you may not start processes of 'salary'" in response.json()["error"]["message"]
    client.force_login(pat)
    page = client.post(
        reverse("admin:processes_processdefinition_add"),
        {"spec_text": json.dumps(data), "_publish": "publish"},
        follow=True,
    )
    assert "you may not start processes of &#x27;salary&#x27;" in page.content.decode()
    assert ProcessDefinition.objects.filter(key="pizza").count() == 1
    # with start on salary it is theirs to publish
    grant(pat, ProcessDefinition.objects.get(key="salary"), START)
    assert publish(data, Actor.for_user(pat)).version == 2


def test_a_child_needs_start_granted_to_the_parents_initiator(pizza_publisher):
    # given a pizza version calling salary, published by someone allowed to (here: the system)
    publish(caller("pizza", "salary"))
    pat = pizza_publisher
    # when pat, who may start pizza only, starts one through the API
    response = client_for(pat).post(
        "/api/processes/", {"definition": "pizza", "business_key": "E011-2026-06"}, format="json"
    )
    # then the pizza case exists, no salary case was started, and the task says why
    assert response.status_code == 201
    pizza = ProcessInstance.objects.get(definition_key="pizza")
    task = pizza.tasks.get(name="call")
    assert task.state == TaskState.FAILED
    assert task.last_error == (
        "'pat', who started pizza:E011-2026-06, may not start processes of 'salary': no child "
        "was started"
    )
    assert not ProcessInstance.objects.filter(definition_key="salary").exists()
    # the system (a command, an import) still may
    engine.process_start(definition_key="pizza", business_key="SYS-1", actor=SYSTEM)
    assert ProcessInstance.objects.filter(definition_key="salary").count() == 1


def test_the_grant_check_follows_a_chain_to_its_first_initiator():
    publish(leaf("c"))
    publish(caller("b", "c"))
    a = publish(caller("a", "b"))
    carol = UserFactory(username="carol")
    grant(carol, a, START)
    grant(carol, ProcessDefinition.objects.get(key="b"), START)
    engine.process_start(definition_key="a", business_key="A1", actor=Actor.for_user(carol))
    # b was started for carol; its own child, c, needs carol's grant too (not the system's)
    b = ProcessInstance.objects.get(definition_key="b")
    assert b.started_by == "a:A1"
    assert "'carol', who started a:A1, may not start processes of 'c'" in (
        b.tasks.get(name="call").last_error
    )
    assert not ProcessInstance.objects.filter(definition_key="c").exists()


def test_a_chain_whose_initiator_left_starts_no_child():
    publish(leaf("child"))
    parent = publish(caller("parent", "child"))
    dave = UserFactory(username="dave")
    grant(dave, parent, START)
    grant(dave, ProcessDefinition.objects.get(key="child"), START)
    # dave's process waits before its call; then dave leaves (his account is deactivated)
    waiting = definition_data(
        "parent",
        stages=[
            ("WAIT", [{"task_name": "wait", "handler": "t.work"}]),
            ("CALL", caller("x", "child")["stages"][0]["tasks"]),
        ],
    )
    publish(waiting)
    process = engine.process_start(
        definition_key="parent", business_key="D1", actor=Actor.for_user(dave)
    ).process
    dave.is_active = False
    dave.save()
    from processes import worker

    worker.run_step(process.tasks.get(name="wait").pk)
    task = process.tasks.get(name="call")
    assert task.state == TaskState.FAILED
    assert task.last_error == (
        "'dave', who started parent:D1, may not start processes of 'child': no child was started"
    )
