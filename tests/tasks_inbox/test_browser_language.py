"""Alice reads her inbox in French on a 390 px phone (gunicorn + WhiteNoise, Debian's headless
chromium): her browser asks for French, the pages, amounts, dates and the definition's own
labels answer in French, and she decides."""

import re

import pytest

from processes import engine
from processes.events import Actor
from processes.models import ProcessInstance
from tests.conftest import ARTIFACTS
from tests.factories import UserFactory
from tests.tasks_inbox.conftest import approval_definition

pytestmark = pytest.mark.browser

NNBSP, NBSP = "\u202f", "\u00a0"  # CLDR's French: groups of digits, then before the currency


@pytest.fixture
def french_approval(import_definition):
    data = approval_definition()
    review = data["stages"][0]["tasks"][0]
    review["label"] = {"en": "Approve the bonus", "fr": "Valider la prime"}
    review["outcomes"] = {
        "approve": {"label": {"en": "Approve", "fr": "Accorder"}},
        "reject": {"label": {"en": "Reject", "fr": "Refuser"}},
    }
    review["form"][0]["label"] = {"en": "Bonus amount", "fr": "Montant de la prime"}
    review["summary"] = [
        {
            "label": {"en": "Bonus to approve", "fr": "Prime à valider"},
            "var": "bonus.amount",
            "format": "money",
            "currency": "EUR",
        }
    ]
    import_definition(data)
    process = engine.process_start(
        definition_key="approval",
        business_key="E-2026-12",
        input={"bonus": {"amount": "1234.5"}},
        actor=Actor.system("test"),
    ).process
    return process.tasks.get(name="approve_bonus")


def test_alice_decides_in_french_on_her_phone(
    web_server, browser_page, asset_guard, french_approval, db
):
    UserFactory(username="alice", roles=["managers"])
    task = french_approval
    page = browser_page
    page.set_viewport_size({"width": 390, "height": 844})
    page.set_extra_http_headers({"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"})

    page.goto(f"{web_server.url}/inbox/")
    assert page.inner_text("h1") == "Se connecter"
    page.fill("#id_username", "alice")
    page.fill("#id_password", "pw")
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url(re.compile(r".*/inbox/$"))

    assert page.get_attribute("html", "lang") == "fr"
    assert page.inner_text("h1") == "Boîte de réception"
    assert "Mes rôles" in page.inner_text("nav.tabs")
    row = page.locator(f"tr[data-task='{task.pk}']")
    assert f"Prime à valider: 1{NNBSP}234,50{NBSP}€" in row.inner_text()
    assert "Valider la prime" in row.inner_text()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(ARTIFACTS / "alice-fr-inbox.png"), full_page=True)

    row.get_by_role("link", name="E-2026-12").click()
    page.wait_for_url(re.compile(rf".*/inbox/tasks/{task.pk}/$"))
    assert "Valider la prime" in page.inner_text("h1")
    assert f"1{NNBSP}234,50{NBSP}€" in page.inner_text("[data-testid=summary]")
    assert "Votre décision" in page.inner_text("#act")
    assert page.inner_text("label[for=id_amount]") == "Montant de la prime *"
    page.screenshot(path=str(ARTIFACTS / "alice-fr-task.png"))

    page.get_by_label("Accorder").check()
    page.fill("#id_amount", "1234.50")
    page.fill("#id_comment", "Bien mérité")
    page.get_by_role("button", name="Envoyer la décision").click()
    page.wait_for_url(re.compile(r".*/inbox/\?tab=done"))
    assert "Accorder : E-2026-12 — le processus a avancé." in page.inner_text(".messages")
    assert "Traitées par moi" in page.inner_text("nav.tabs")
    page.screenshot(path=str(ARTIFACTS / "alice-fr-done.png"), full_page=True)

    process = ProcessInstance.objects.get(pk=task.process_id)
    assert process.variables["approve_bonus"]["decision"] == "approve"
    assert process.variables["approve_bonus"]["comment"] == "Bien mérité"
