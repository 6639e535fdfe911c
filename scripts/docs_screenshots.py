"""The pictures of the README and the docs site, taken in Debian's chromium from a running
`make demo` on a fresh database (before anyone decided E003):

    .venv/bin/python scripts/docs_screenshots.py [127.0.0.1:8000] [--tutorial]

Writes docs/assets/salary-diagram.png (the salary process of E003-2026-11 as the admin draws
it: CALCULATE done, the approval waiting for alice) and docs/assets/inbox.png, inbox-task.png
(alice's inbox and her task page). With --tutorial, after the tutorial's claim EXP-0001 was
started (docs/tutorial/first-process.md): tutorial-task.png (alice's task) and
tutorial-diagram.png. Read-only: it decides nothing.
"""

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ASSETS = Path(__file__).resolve().parent.parent / "docs" / "assets"
ASSETS.mkdir(parents=True, exist_ok=True)
args = [a for a in sys.argv[1:] if not a.startswith("--")]
base = "http://" + (args[0] if args else "127.0.0.1:8000")
TUTORIAL = "--tutorial" in sys.argv


def log_in(page, username: str) -> None:
    page.goto(base + "/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", username)
    page.click("button[type=submit]")
    page.wait_for_load_state()


with sync_playwright() as p:
    browser = p.chromium.launch(
        executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"]
    )
    page = browser.new_context(viewport={"width": 1280, "height": 720}).new_page()

    if TUTORIAL:
        log_in(page, "alice")
        page.goto(base + "/inbox/?tab=roles&q=EXP-0001")
        page.get_by_role("link", name="EXP-0001").first.click()
        page.wait_for_load_state()
        page.screenshot(path=ASSETS / "tutorial-task.png")
        page.context.clear_cookies()
        log_in(page, "admin")
        page.goto(base + "/admin/processes/processinstance/?q=EXP-0001")
        page.locator("#result_list a", has_text="EXP-0001").first.click()
        page.wait_for_load_state()
        page.locator("#fd-diagram").first.screenshot(path=ASSETS / "tutorial-diagram.png")
        browser.close()
        sys.exit(0)

    log_in(page, "alice")
    page.goto(base + "/inbox/?tab=roles")
    page.screenshot(path=ASSETS / "inbox.png", clip={"x": 0, "y": 0, "width": 1280, "height": 480})
    page.locator("tr", has_text="E003-2026-11").get_by_role("link", name="E003-2026-11").click()
    page.wait_for_load_state()
    page.screenshot(path=ASSETS / "inbox-task.png")
    page.context.clear_cookies()

    log_in(page, "admin")
    page.goto(base + "/admin/processes/processinstance/?q=E003-2026-11")
    page.locator("#result_list a", has_text="E003-2026-11").first.click()
    page.wait_for_load_state()
    diagram = page.locator("#fd-diagram").first
    diagram.scroll_into_view_if_needed()
    diagram.screenshot(path=ASSETS / "salary-diagram.png")
    browser.close()

for name in ("salary-diagram.png", "inbox.png", "inbox-task.png"):
    print(ASSETS / name)
