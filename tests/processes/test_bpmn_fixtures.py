"""Real BPMN files (tests/fixtures/bpmn/, from Camunda's and bpmn.io's public examples): each
imports and runs, or is refused with the exact list of elements Flowdesk can't run, each with
its id and reason. The seed-002 pizza template exports and imports back as it was written."""

import json
from pathlib import Path

import pytest

from processes import bpmn, engine
from processes.models import ProcessState, TaskInstance, TaskState
from processes.spec import SpecValidationError
from tests.conftest import DEFINITIONS
from tests.factories import complete_task

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "bpmn"
LATER = "not supported yet (timer/message tasks)"
JAVA = "Java code does not run in Flowdesk"

REFUSED = {
    "camunda7/payment-step-5.bpmn": [
        ("Task_1j42goo", "camunda:mapDecisionResult: not supported"),
        ("Task_1j42goo", "a DMN decision (camunda:decisionRef): not supported"),
        ("Task_1j42goo", "a business rule task (a DMN decision): not supported"),
    ],
    "camunda7/twitter-demo.bpmn": [
        ("service_task_send_rejection_notification", JAVA),
        ("service_task_publish_on_twitter", JAVA),
        ("user_task_review_tweet", "assignee 'demo': Flowdesk assigns by role"),
        ("user_task_review_tweet", "camunda:formKey 'embedded:app:forms/reviewTweet.html'"),
    ],
    "camunda7/job-announcement.bpmn": [
        ("mail", JAVA),
        ("review", "assignee '#{jobAnnouncementService.findRequester(jobAnnouncementId)}'"),
        ("correct", "assignee '#{jobAnnouncementService.findEditor(jobAnnouncementId)}'"),
    ],
    "camunda8/deploy-workflow.bpmn": [
        ("ExclusiveGateway_0wne7eb", f"an event-based gateway: {LATER}"),
        ("IntermediateCatchEvent_04zcf15", f"a timer catch event: {LATER}"),
        ("IntermediateCatchEvent_169ouyw", f"a message catch event: {LATER}"),
    ],
    "camunda8/tasklist.bpmn": [
        ("Activity_0urphmi", "assigned_to: a HUMAN task needs the role"),
    ],
    "bpmn-io/starter.bpmn": [
        ("sid-337A23B9-A923-4CCE-B613-3E247B773CCE", "a flow back to sid-5134932A"),
    ],
    "bpmn-io/pizza-collaboration.bpmn": [
        *[(f"_6-{n}", f"a message flow: {LATER}") for n in (638, 642, 646, 648, 640, 750)],
        ("_6-2", "a second process (pool 'Pizza Customer'): Flowdesk runs one process per file"),
        ("OrderReceivedEvent", f"a message start event: {LATER}"),
        ("_6-674", f"a message catch event: {LATER}"),
        ("_6-616", "a terminate end event: not supported"),
    ],
    "bpmn-io/kitchen-sink.bpmn": [
        ("IntermediateThrowEvent_0iysg53", "not valid BPMN 2.0 (line 90)"),
        ("IntermediateThrowEvent_1liyvfn", "not valid BPMN 2.0 (line 94)"),
        ("Process_0abj3w2", "a second process"),
        ("BoundaryEvent_1pheq3p", "a signal boundary event: not supported"),
        ("BoundaryEvent_04znm02", "a conditional boundary event: not supported"),
        ("BoundaryEvent_1c7kst9", "an escalation boundary event: not supported"),
        ("BoundaryEvent_0iiyz0j", f"a message boundary event: {LATER}"),
        ("BoundaryEvent_1ge1buo", "a compensate boundary event: not supported"),
        ("BoundaryEvent_00et2aq", "a cancel boundary event: not supported"),
        ("BoundaryEvent_0dysuz9", "an error boundary event: not supported"),
        ("BoundaryEvent_09zzeyl", "a conditional boundary event: not supported"),
        ("BoundaryEvent_14eor8w", "an escalation boundary event: not supported"),
        ("BoundaryEvent_0nu3946", f"a message boundary event: {LATER}"),
        ("Task_19iw28f", "an embedded sub-process: not supported"),
        ("ExclusiveGateway_0w2zn42", f"an event-based gateway: {LATER}"),
        ("ExclusiveGateway_08cpnyi", "a complex gateway: not supported"),
        ("IntermediateThrowEvent_0iysg53", "a link throw event: not supported"),
        ("IntermediateThrowEvent_1liyvfn", "a link catch event: not supported"),
        ("IntermediateThrowEvent_0731jft", "a conditional catch event: not supported"),
        ("IntermediateThrowEvent_0d0om9q", "an escalation throw event: not supported"),
        ("IntermediateThrowEvent_1vaa2b4", f"a timer catch event: {LATER}"),
        ("IntermediateThrowEvent_1755nsj", f"a message throw event: {LATER}"),
        ("IntermediateThrowEvent_17ci1dt", f"a message catch event: {LATER}"),
        ("Task_1165fo8", "a business rule task (a DMN decision): not supported"),
        ("Task_0oz8m30", f"a receive task (it waits for a message): {LATER}"),
        ("Task_0qibn8y", f"a send task (a message): {LATER}"),
        ("Task_1ank6jx", "a script task: scripts don't run in Flowdesk"),
        ("BoundaryEvent_0krxj1n", "a signal boundary event: not supported"),
        ("BoundaryEvent_1fs6xst", f"a boundary timer: {LATER}"),
    ],
}
IMPORTED = [
    "camunda7/payment-step-1.bpmn",
    "camunda8/conditional-pathway.bpmn",
    "camunda8/hello-world.bpmn",
]


def read(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_every_fixture_is_covered_and_has_its_licence():
    files = {str(p.relative_to(FIXTURES)) for p in FIXTURES.glob("*/*.bpmn")}
    assert files == set(REFUSED) | set(IMPORTED)
    readme = (FIXTURES / "README.md").read_text()
    for name in files:
        assert f"`{name}`" in readme
    for licence in (
        "camunda-bpm-examples",
        "camunda-get-started-quickstart",
        "camunda-8-js-sdk",
        "bpmn-js-examples",
    ):
        assert (FIXTURES / f"LICENSE-{licence}.txt").exists()


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_file_flowdesk_cannot_run_is_refused_with_every_element(name):
    with pytest.raises(SpecValidationError) as refused:
        bpmn.definition_from_bpmn(read(name))
    found = [(e.path, e.message) for e in refused.value.errors]
    assert [path for path, _ in found] == [path for path, _ in REFUSED[name]]
    for (path, message), (_, expected) in zip(found, REFUSED[name], strict=True):
        assert expected in message, (path, message)


def import_and_start(import_definition, name, business_key="B-1", input=None):
    definition = import_definition(bpmn.definition_from_bpmn(read(name)))
    return engine.process_start(
        definition=definition, business_key=business_key, input=input or {}, actor=SYSTEM()
    ).process


def SYSTEM():
    from processes.events import Actor

    return Actor.system("test")


def open_tasks(process):
    return {
        t.name: t for t in TaskInstance.objects.filter(process=process, state=TaskState.SCHEDULED)
    }


@pytest.mark.django_db
def test_camunda7_external_task_runs(import_definition):
    process = import_and_start(import_definition, "camunda7/payment-step-1.bpmn")
    charge = open_tasks(process)["Task_19pt1nu"]
    assert charge.task_queue == "charge-card"
    assert process.definition.parsed().task(charge.name).label == "Charge Credit Card"
    complete_task(charge, {"charged": 42})
    process.refresh_from_db()
    assert process.state == ProcessState.COMPLETED
    assert process.variables["Task_19pt1nu"] == {"charged": 42}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "flag, taken, passed", [(True, "pathA", "pathB"), (False, "pathB", "pathA")]
)
def test_camunda8_feel_conditions_choose_the_path(import_definition, flag, taken, passed):
    process = import_and_start(
        import_definition, "camunda8/conditional-pathway.bpmn", input={"conditionVariable": flag}
    )
    queues = {t.task_queue: t for t in TaskInstance.objects.filter(process=process)}
    complete_task(queues["wait"], {})
    queues = {t.task_queue: t for t in TaskInstance.objects.filter(process=process)}
    assert queues[passed].state == TaskState.SKIPPED
    assert queues[taken].state == TaskState.SCHEDULED
    complete_task(queues[taken], {})
    process.refresh_from_db()
    assert process.state == ProcessState.COMPLETED


@pytest.mark.django_db
def test_camunda8_job_type_and_headers_run(import_definition):
    process = import_and_start(import_definition, "camunda8/hello-world.bpmn")
    say = open_tasks(process)["ServiceTask_0g6tf5f"]
    assert say.task_queue == "console-log"
    spec = process.definition.parsed().task("ServiceTask_0g6tf5f")
    assert spec.extra == {"headers": {"message": "Hello World"}}  # handed to the worker
    assert spec.retry.max_attempts == 100
    complete_task(say, {})
    process.refresh_from_db()
    assert process.state == ProcessState.COMPLETED


def test_the_seed_pizza_template_exports_and_imports_back():
    data = json.loads((DEFINITIONS / "pizza.json").read_text())
    xml = bpmn.bpmn_from_definition(data, "italian")
    assert bpmn.definition_from_bpmn(xml) == {"key": "italian", **data}
