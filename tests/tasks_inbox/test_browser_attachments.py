"""On a 390 px phone, in chromium against gunicorn + WhiteNoise: alice rejects; the reason field
appears only once "reject" is chosen (static/flowdesk/conditional-fields.js), she attaches a
signed letter, and the task page then shows the file with its preview."""

import hashlib
import re

import pytest

from processes import engine
from processes.events import Actor
from processes.models import Attachment, TaskInstance
from tests.conftest import ARTIFACTS
from tests.factories import UserFactory
from tests.processes.test_attachments import make_png, papers_definition

pytestmark = pytest.mark.browser


def test_alice_rejects_with_the_conditional_reason_and_a_file(
    web_server, browser_page, asset_guard, import_definition, tmp_path
):
    import_definition(papers_definition())
    UserFactory(username="alice", roles=["managers"])
    process = engine.process_start(
        definition_key="papers", business_key="LETTER-1", input={}, actor=Actor.system("test")
    ).process
    task = process.tasks.get(name="approve")
    letter = tmp_path / "signed-letter.png"
    letter.write_bytes(make_png(60, 40))

    page = browser_page
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{web_server.url}/accounts/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "pw")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/inbox/"))
    page.goto(f"{web_server.url}/inbox/tasks/{task.pk}/")

    reason = page.locator("[data-field=reason]")
    assert reason.is_hidden()  # not asked until the decision is "reject"
    page.check("input[name=decision][value=approve]")
    assert reason.is_hidden()
    page.check("input[name=decision][value=reject]")
    assert reason.is_visible()
    page.screenshot(path=str(ARTIFACTS / "attachments-390-reason.png"), full_page=True)

    page.fill("#id_reason", "The letter is not signed by HR")
    page.set_input_files("#id_letter", str(letter))
    page.get_by_role("button", name="Submit decision").click()
    page.wait_for_url(re.compile(r".*/inbox/\?tab=done"))

    task = TaskInstance.objects.get(pk=task.pk)
    assert task.result["decision"] == "reject"
    assert task.result["reason"] == "The letter is not signed by HR"
    attachment = Attachment.objects.get(process=process)
    assert attachment.sha256 == hashlib.sha256(letter.read_bytes()).hexdigest()
    assert task.result["letter"] == str(attachment.pk)

    page.goto(f"{web_server.url}/inbox/tasks/{task.pk}/")
    preview = page.locator("[data-testid=attachment-preview]")
    preview.wait_for()
    page.wait_for_function(
        "document.querySelector('[data-testid=attachment-preview]').naturalWidth === 60"
    )
    assert "signed-letter.png" in page.inner_text("[data-testid=attachments]")
    assert "File attached: signed-letter.png" in page.inner_text("[data-testid=timeline]")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(ARTIFACTS / "attachments-390-done.png"), full_page=True)
