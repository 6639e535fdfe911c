"""The three-minute demo walk-through (docs/get-started/demo.md), driven in Debian's chromium against a running
`make demo` on a fresh database: approve alice's bonus, fix the E013 incident, read the API docs.

    .venv/bin/python scripts/demo_walkthrough.py [127.0.0.1:8000]

Prints what each page says, fails on any asset a page could not load; screenshots go to
tests/artifacts/demo-*.png. A check of the docs by hand, not part of the test suite (it changes
the demo's data: run it once per fresh demo).
"""

import os
import sys
import time

from playwright.sync_api import sync_playwright

ARTIFACTS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "artifacts"
)
os.makedirs(ARTIFACTS, exist_ok=True)
base = "http://" + (sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8000")
bad = []
t0 = time.monotonic()
with sync_playwright() as p:
    b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
    page = b.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.on(
        "response",
        lambda r: (
            r.status >= 400
            and r.request.resource_type in ("stylesheet", "script", "image", "font")
            and bad.append(f"{r.status} {r.url}")
        ),
    )
    page.on("requestfailed", lambda r: bad.append(f"failed {r.url}"))
    page.goto(base + "/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "alice")
    page.click("button[type=submit]")
    row = page.locator("tr", has_text="E003-2026-11")
    print("1. alice's row:", " | ".join(row.inner_text().split("\n")[:3]))
    row.get_by_role("link", name="E003-2026-11").click()
    print("   summary:", page.inner_text("[data-testid=summary]").replace("\n", " "))
    page.check("input[name=decision][value=approve]")
    page.get_by_role("button", name="Submit decision").click()
    page.wait_for_load_state()
    print("  ", page.inner_text(".messages"))
    page.screenshot(path=ARTIFACTS + "/demo-1-approved.png")
    page.click("text=Log out")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    print("2. admin lands on", page.url)
    page.click("text=Process instances")
    page.fill("#searchbar", "E013-2026-11")
    page.press("#searchbar", "Enter")
    page.locator("#result_list a", has_text="E013-2026-11").first.click()
    print(
        "   banner:",
        page.inner_text(".fd-incident h2"),
        "|",
        page.inner_text(".fd-incident pre")[:90],
    )
    page.screenshot(path=ARTIFACTS + "/demo-2-incident.png")
    page.click(".fd-incident [data-action=skip]")
    print("   dependants:", page.inner_text("#fd-dependants").replace("\n", " ")[:300])
    page.fill("#id_reason", "E013 has no bonus plan: HR confirmed 300 EUR by mail")
    page.fill("[name='set:bonus.amount']", "300")
    page.fill("[name='set:bonus.currency']", "EUR")
    page.fill("[name='set:bonus.rating']", "meets")
    page.click("#fd-confirm")
    page.wait_for_selector(".messagelist")
    print("  ", page.inner_text(".messagelist"))
    page.screenshot(path=ARTIFACTS + "/demo-2-fixed.png", full_page=True)
    page.goto(base + "/api/docs/")
    page.wait_for_selector(".swagger-ui .info .title", timeout=30000)
    print("3. api docs:", page.inner_text(".swagger-ui .info .title").split("\n")[0])
    page.goto(base + "/api/redoc/")
    page.wait_for_selector("h1", timeout=30000)
    print("   redoc:", page.inner_text("h1"))
    # alice now has E013 with its bonus
    ctx2 = b.new_context()
    p2 = ctx2.new_page()
    p2.goto(base + "/accounts/login/")
    p2.fill("#id_username", "alice")
    p2.fill("#id_password", "alice")
    p2.click("button[type=submit]")
    for _ in range(30):
        r = p2.locator("tr", has_text="E013-2026-11")
        if r.count():
            break
        time.sleep(1)
        p2.reload()
    print(
        "   alice now sees:",
        " | ".join(p2.locator("tr", has_text="E013-2026-11").inner_text().split("\n")[:3]),
    )
    b.close()
print(
    f"walk-through in {time.monotonic() - t0:.1f} s (machine time, no reading); missing assets: {bad or 'none'}"
)
sys.exit(1 if bad else 0)
