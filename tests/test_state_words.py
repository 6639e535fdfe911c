"""One word per state on every screen and in the API docs: the labels of ``TaskState`` and
``ProcessState`` are the one home; each screen is rendered with a task (a process) in each state
and must show that word."""

import json
import re
from xml.etree import ElementTree

import pytest
from django.urls import reverse

from processes import diagram, engine
from processes.events import Actor
from processes.models import ProcessInstance, ProcessState, TaskInstance, TaskState
from tests.factories import definition_data

pytestmark = pytest.mark.django_db


@pytest.fixture
def review(import_definition):
    import_definition(
        definition_data(
            "words",
            stages=[
                (
                    "A",
                    [
                        {"task_name": "review", "task_type": "HUMAN", "assigned_to": "managers"},
                        {"task_name": "after", "task_queue": "q", "parent_task": ["review"]},
                    ],
                )
            ],
        )
    )
    process = engine.process_start(
        definition_key="words", business_key="W-1", actor=Actor.system("t")
    ).process
    return process.tasks.get(name="review")


def put_task_in(task, state):
    """The state as the page reads it (the engine's paths to each state are tested elsewhere)."""
    TaskInstance.objects.filter(pk=task.pk).update(state=state)


def put_process_in(process, state):
    ProcessInstance.objects.filter(pk=process.pk).update(state=state)


def inbox_page(client, task) -> str:
    return client.get(reverse("tasks_inbox:task", args=[task.pk])).content.decode()


def admin_page(client, process) -> str:
    url = reverse("admin:processes_processinstance_change", args=[process.pk])
    return client.get(url).content.decode()


def test_the_words_are_distinct_and_the_two_reported_disagreements_are_gone():
    for choices in (TaskState, ProcessState):
        words = [label for _, label in choices.choices]
        assert len(set(words)) == len(words)
    assert TaskState.SCHEDULED.label == "waiting"  # was "scheduled" in one place, "waiting
    # for a person" in another
    assert ProcessState.FAILED.label == "incident"


@pytest.mark.parametrize("state", TaskState.values)
def test_every_screen_shows_a_task_state_with_its_one_word(admin_client, review, state):
    word = str(TaskState(state).label)
    put_task_in(review, state)
    process = review.process

    # the inbox task page: "This task" and the list of steps
    inbox = inbox_page(admin_client, review)
    this_task = inbox.split('data-testid="task-state"', 1)[1].split("</dd>", 1)[0]
    assert f'data-state="{state}">{word}</span>' in this_task
    assert f'data-state="{state}">{word}</span>' in inbox.split('id="tasks-h"', 1)[1]

    # the admin's task table
    admin = admin_page(admin_client, process)
    table = admin.split('id="tasks-group"', 1)[1]
    row = table.split('data-task="review"', 1)[1].split("</tr>", 1)[0]
    assert re.search(rf'class="fd-badge fd-{state}"[^>]*>{re.escape(word)}</span>', row), row

    # the diagram (the inbox's and the admin's): the task's box and the legend
    svg = diagram.render_instance(process)
    root = ElementTree.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    box = next(g for g in root.iter(f"{ns}g") if g.get("data-task") == "review")
    assert box.find(f"{ns}title").text.endswith(f", {word})")
    legend = {
        g.get("data-state"): "".join(g.itertext())
        for g in root.iter(f"{ns}g")
        if "legend-item" in (g.get("class") or "")
    }
    assert legend[state] == word


@pytest.mark.parametrize("state", ProcessState.values)
def test_every_screen_shows_a_process_state_with_its_one_word(admin_client, review, state):
    word = str(ProcessState(state).label)
    process = review.process
    put_process_in(process, state)

    inbox = inbox_page(admin_client, review)
    assert re.search(rf'data-testid="process-state">{re.escape(word)}</span>', inbox)

    badge = rf'class="fd-badge fd-{state}"[^>]*>{re.escape(word)}</span>'
    assert re.search(badge, admin_page(admin_client, process))
    listing = admin_client.get(reverse("admin:processes_processinstance_changelist"))
    assert re.search(badge, listing.content.decode())

    dashboard = admin_client.get(
        reverse("admin:processes_processinstance_dashboard") + "?key=words"
    ).content.decode()
    card = dashboard.split(f'data-state="{state}"', 1)[1].split("</a>", 1)[0]
    assert f'<div class="l">{word}</div>' in card
    assert f'<th class="num" data-state="{state}">{word}</th>' in dashboard


def test_the_api_docs_describe_each_state_with_its_word(client):
    schema = json.loads(client.get("/api/schema/?format=json").content)
    enums = schema["components"]["schemas"]
    for name, choices in (("TaskStateEnum", TaskState), ("ProcessStateEnum", ProcessState)):
        described = enums[name]["description"]
        for value, word in choices.choices:
            assert f"* `{value}` - {word}" in described
