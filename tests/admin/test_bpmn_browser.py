"""bpmn-js in the admin, in Debian's chromium against gunicorn + WhiteNoise (offline: every asset
from the server, none missing): a definition's diagram with the cases waiting at each task, an
instance's tasks marked completed, waiting, failed and skipped, every shipped definition drawn
without a warning, the SVG for a browser without JavaScript, and a draft edited in the modeler
and saved through the one BPMN check."""

import json

import pytest
from django.urls import reverse

from processes.models import DefinitionStatus, ProcessDefinition, TaskState
from tests.admin.conftest import admin_login
from tests.admin.helpers import run_ready_steps, start, task
from tests.conftest import ARTIFACTS, DEFINITIONS
from tests.factories import complete_task, definition_data

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

READY = ".fd-bpmn.fd-bpmn-ready"


def element(page, element_id):
    return page.locator(f'.djs-element[data-element-id="{element_id}"]')


def test_a_definition_shows_how_many_cases_wait_at_each_task(
    web_server, browser_page, asset_guard, superuser, import_definition
):
    page = browser_page
    definition = import_definition("pizza.json", key="pizza")
    for number in range(3):
        start("pizza", business_key=f"ORDER-{number}")
    complete_task(task(start("pizza", business_key="ORDER-0"), "confirm_order"))
    admin_login(page, web_server.url)
    page.goto(
        web_server.url + reverse("admin:processes_processdefinition_change", args=[definition.pk])
    )
    page.wait_for_selector(READY)
    assert page.get_attribute(".fd-bpmn", "data-warnings") == "0"
    assert element(page, "deliver_food").count() == 1
    assert page.locator(".djs-element[data-element-id^='_fd.stage.']").count() == 4  # the lanes
    counts = {
        c.get_attribute("data-element"): c.inner_text()
        for c in page.locator(".fd-bpmn-count").all()
    }
    assert counts == {
        "confirm_order": "2 waiting",
        "make_food": "1 waiting",
        "assign_executive": "1 waiting",
    }
    assert not page.locator(".fd-bpmn-fallback").is_visible()
    page.screenshot(path=str(ARTIFACTS / "admin-bpmn-definition.png"), full_page=True)


def test_a_running_case_is_marked_on_its_diagram(
    web_server, browser_page, asset_guard, superuser, import_definition, flaky
):
    page = browser_page
    import_definition(
        definition_data(
            "marks",
            stages=[
                (
                    "WORK",
                    [
                        {"task_name": "prepare", "handler": "flowdesk.noop"},
                        {
                            "task_name": "optional",
                            "handler": "flowdesk.noop",
                            "condition": {"var": "extra", "op": "truthy"},
                        },
                        {
                            "task_name": "charge",
                            "handler": "test_admin.flaky",
                            "retry": {"max_attempts": 1},
                            "parent_task": ["prepare"],
                        },
                        {"task_name": "ship", "task_queue": "shipping", "parent_task": ["prepare"]},
                    ],
                )
            ],
        )
    )
    process = start("marks")
    run_ready_steps(process)
    states = {name: task(process, name).state for name in ("prepare", "optional", "charge", "ship")}
    assert states == {
        "prepare": TaskState.COMPLETED,
        "optional": TaskState.SKIPPED,
        "charge": TaskState.FAILED,
        "ship": TaskState.SCHEDULED,
    }
    admin_login(page, web_server.url)
    page.goto(web_server.url + reverse("admin:processes_processinstance_change", args=[process.pk]))
    page.wait_for_selector(READY)
    for name, mark in [
        ("prepare", "completed"),
        ("optional", "skipped"),
        ("charge", "failed"),
        ("ship", "active"),
        ("_fd.start", "completed"),
    ]:
        assert "fd-bpmn-" + mark in element(page, name).get_attribute("class"), name
    fill = (
        element(page, "charge")
        .locator(".djs-visual > :first-child")
        .evaluate("e => getComputedStyle(e).fill")
    )
    assert fill == "rgb(255, 235, 233)"  # the failed task is red
    assert page.inner_text(".fd-bpmn-legend").split() == [
        "completed",
        "waiting",
        "or",
        "running",
        "failed",
        "skipped",
    ]
    page.screenshot(path=str(ARTIFACTS / "admin-bpmn-instance.png"), full_page=True)


def test_every_shipped_definition_is_drawn_by_bpmn_js_without_a_warning(
    web_server, browser_page, asset_guard, superuser, import_definition
):
    page = browser_page
    admin_login(page, web_server.url)
    for name in sorted(p.name for p in DEFINITIONS.glob("*.json")):
        definition = import_definition(name)
        page.goto(
            web_server.url
            + reverse("admin:processes_processdefinition_change", args=[definition.pk])
        )
        page.wait_for_selector(READY)
        assert page.get_attribute(".fd-bpmn", "data-warnings") == "0", name
        for spec_task in definition.parsed().tasks:
            assert element(page, spec_task.name).count() == 1, (name, spec_task.name)


def test_without_javascript_the_svg_drawing_is_the_diagram(
    web_server, browser_page, superuser, import_definition
):
    definition = import_definition("salary.json")
    context = browser_page.context.browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        admin_login(page, web_server.url)
        page.goto(
            web_server.url
            + reverse("admin:processes_processdefinition_change", args=[definition.pk])
        )
        assert page.locator(".fd-bpmn-fallback .fd-diagram").is_visible()
        assert page.locator(".fd-diagram .task[data-task='approve_bonus']").count() == 1
        assert page.locator(".djs-container").count() == 0
    finally:
        context.close()


def test_a_draft_is_edited_in_the_modeler_and_saved_through_the_bpmn_check(
    web_server, browser_page, asset_guard, superuser
):
    from processes import engine
    from processes.events import Actor

    page = browser_page
    draft, _ = engine.definition_import(
        data=definition_data(
            "orders", stages=[("MAIN", [{"task_name": "take", "handler": "flowdesk.noop"}])]
        ),
        actor=Actor.for_user(superuser),
        publish=False,
    )
    admin_login(page, web_server.url)
    page.goto(web_server.url + reverse("admin:processes_processdefinition_change", args=[draft.pk]))
    page.click("#fd-modeler")
    page.wait_for_selector("#fd-modeler-form[data-ready=true]")
    assert page.input_value("#fd-props") == ""  # the process: no field beyond the drawn ones

    # a task's Flowdesk fields, edited as JSON beside the canvas
    element(page, "take").click()
    assert json.loads(page.input_value("#fd-props")) == {"handler": "flowdesk.noop"}
    page.fill("#fd-props", '{"handler": "flowdesk.noop", "business_status": "TAKEN"}')
    page.click("#fd-props-apply")
    # and the diagram itself: a new label through bpmn-js's modeling API
    page.evaluate(
        """() => {
          const m = window.fdModeler;
          m.get('modeling').updateLabel(m.get('elementRegistry').get('take'), 'Take the order');
        }"""
    )
    page.click("#fd-modeler-save")
    page.wait_for_selector(".messagelist")
    draft.refresh_from_db()
    spec = draft.parsed()
    assert (spec.task("take").business_status, spec.task("take").label) == (
        "TAKEN",
        "Take the order",
    )
    assert draft.status == DefinitionStatus.DRAFT

    # a refusal lists the problem at the element, marks it, and keeps what was drawn
    page.wait_for_selector("#fd-modeler-form[data-ready=true]")
    element(page, "take").click()
    page.fill("#fd-props", '{"handler": "no.such.handler"}')
    page.click("#fd-modeler-save")
    page.wait_for_selector("#fd-spec-errors")
    page.wait_for_selector("#fd-modeler-form[data-ready=true]")
    assert "take: handler: unknown handler 'no.such.handler'" in page.inner_text("#fd-spec-errors")
    assert "fd-bpmn-error" in element(page, "take").get_attribute("class")
    element(page, "take").click()
    assert json.loads(page.input_value("#fd-props")) == {"handler": "no.such.handler"}
    page.screenshot(path=str(ARTIFACTS / "admin-bpmn-modeler.png"), full_page=True)
    assert ProcessDefinition.objects.get(pk=draft.pk).parsed().task("take").handler == (
        "flowdesk.noop"
    )


def test_saving_a_shipped_definition_unchanged_from_the_modeler_keeps_it(
    web_server, browser_page, asset_guard, superuser
):
    """bpmn-js reads Flowdesk's export and writes it back; the import takes it back whole."""
    from processes import engine
    from processes.events import Actor

    page = browser_page
    admin_login(page, web_server.url)
    for name in sorted(p.name for p in DEFINITIONS.glob("*.json")):
        data = json.loads((DEFINITIONS / name).read_text())
        draft, _ = engine.definition_import(
            data=data, actor=Actor.for_user(superuser), publish=False
        )
        before = draft.parsed()
        page.goto(
            web_server.url + reverse("admin:processes_processdefinition_modeler", args=[draft.pk])
        )
        page.wait_for_selector("#fd-modeler-form[data-ready=true]")
        page.click("#fd-modeler-save")
        page.wait_for_selector(".messagelist")
        assert page.locator("#fd-spec-errors").count() == 0, page.inner_text("#fd-spec-errors")
        draft.refresh_from_db()
        assert draft.parsed() == before, name
