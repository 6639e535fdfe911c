"""Every page styled, as production serves it: gunicorn + WhiteNoise (not pytest's live server,
which serves static files itself), in Debian's chromium; a missing asset fails the test."""

import re

import httpx
import pytest

from tests.conftest import ARTIFACTS
from tests.factories import UserFactory

pytestmark = pytest.mark.browser


def login(page, url, username, password="pw"):
    page.goto(f"{url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def test_every_page_is_styled_and_the_api_docs_work_offline(web_server, browser_page, asset_guard):
    UserFactory(username="root", is_staff=True, is_superuser=True)
    page = browser_page
    url = web_server.url

    login(page, url, "root")
    page.goto(f"{url}/admin/")
    # the admin's own stylesheet is there: its header is the dark admin bar, not raw HTML
    header = page.locator("#header")
    assert header.evaluate("e => getComputedStyle(e).display") == "flex"
    assert page.locator("#content").bounding_box()["y"] < 300
    page.screenshot(path=str(ARTIFACTS / "static-admin.png"))

    page.goto(f"{url}/admin/processes/processinstance/")
    page.goto(f"{url}/inbox/")

    page.goto(f"{url}/api/docs/")
    page.wait_for_selector(".swagger-ui .info .title", timeout=30000)
    assert "Flowdesk API" in page.inner_text(".swagger-ui .info .title")
    page.screenshot(path=str(ARTIFACTS / "static-api-docs.png"))

    page.goto(f"{url}/api/redoc/")
    page.wait_for_selector("h1", timeout=30000)
    assert "Flowdesk API" in page.inner_text("h1")
    page.screenshot(path=str(ARTIFACTS / "static-api-redoc.png"))


def test_static_files_are_hashed_compressed_and_cached_for_good(web_server):
    page = httpx.get(f"{web_server.url}/accounts/login/")
    css = re.search(r'href="(/static/[^"]+\.css)"', page.text)
    assert css, "the login page links no stylesheet"
    assert re.search(r"\.[0-9a-f]{12}\.css$", css.group(1)), css.group(1)
    asset = httpx.get(web_server.url + css.group(1), headers={"Accept-Encoding": "gzip"})
    assert asset.status_code == 200
    assert asset.headers["content-encoding"] == "gzip"
    assert "immutable" in asset.headers["cache-control"]
    assert httpx.get(f"{web_server.url}/static/no-such-file.css").status_code == 404
