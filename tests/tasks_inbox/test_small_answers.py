"""Small but visible: no blank answers. A visit to a form's target goes back to its page, logout
by GET shows a button, ``HEAD /`` is 200, ``/api/`` lists links, a favicon, and every 4xx has
a page."""

import pytest
from django.templatetags.static import static
from django.urls import reverse

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def mia(client, people):
    client.force_login(people["candidate"])
    return people["candidate"]


@pytest.mark.parametrize("action", ["decide", "claim", "release", "delegate"])
def test_a_visit_to_a_task_action_goes_back_to_the_task(client, mia, start, action):
    task = start()

    response = client.get(reverse(f"tasks_inbox:{action}", args=[task.pk]))

    assert response.status_code == 302
    assert response["Location"] == reverse("tasks_inbox:task", args=[task.pk])


def test_reloading_a_decision_after_a_form_error_shows_the_task(client, mia, start):
    task = start()
    decide = reverse("tasks_inbox:decide", args=[task.pk])
    assert client.post(decide, {"decision": "approve"}).status_code == 400  # amount missing

    page = client.get(decide, follow=True)  # the browser's reload of that address

    assert page.status_code == 200
    assert page.redirect_chain == [(reverse("tasks_inbox:task", args=[task.pk]), 302)]
    assert b"Submit decision" in page.content


def test_a_visit_to_bulk_decide_goes_back_to_the_inbox(client, mia):
    response = client.get(reverse("tasks_inbox:bulk_decide"))
    assert (response.status_code, response["Location"]) == (302, reverse("tasks_inbox:inbox"))


def test_logout_by_get_shows_a_button_and_post_logs_out(client, mia):
    page = client.get("/accounts/logout/")
    assert page.status_code == 200
    assert b'data-testid="logout"' in page.content and b"mia" in page.content

    client.post("/accounts/logout/")

    after = client.get("/accounts/logout/")
    assert b"You are logged out" in after.content
    assert client.get(reverse("tasks_inbox:inbox")).status_code == 302  # to the login page


def test_head_on_the_root_is_200(client):
    assert client.head("/").status_code == 200
    assert client.get("/").status_code == 302  # people go to their inbox


def test_the_api_index_lists_links(client):
    response = client.get("/api/")

    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    links = response.json()["links"]
    assert links["processes"] == "http://testserver/api/processes/"
    assert links["task"] == "http://testserver/api/tasks/{id}/"
    assert {"definitions", "events", "inbox", "schema", "docs"} <= set(links)
    assert client.get(links["definitions"]).status_code in (401, 403)  # the links are real


def test_a_favicon_is_linked_and_served(client, mia):
    page = client.get(reverse("tasks_inbox:inbox")).content.decode()
    assert f'<link rel="icon" href="{static("flowdesk/favicon.svg")}"' in page
    response = client.get("/favicon.ico")
    assert (response.status_code, response["Location"]) == (302, static("flowdesk/favicon.svg"))


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("put", "/inbox/"),
        ("delete", "/accounts/login/"),
        ("patch", "/"),
        ("post", "/inbox/absences/1/end/x"),
        ("get", "/no/such/page/"),
        ("post", "/inbox/tasks/1/"),
        ("put", "/inbox/tasks/1/decide/"),
        ("get", "/inbox/tasks/987654/"),
        ("delete", "/api/"),
        ("get", "/api/nothing/"),
    ],
)
def test_no_4xx_answer_is_blank(client, mia, method, url):
    response = getattr(client, method)(url)

    assert 400 <= response.status_code < 500
    assert response.content.strip(), f"{method.upper()} {url} answered a blank page"
    if not url.startswith("/api/"):
        assert b'data-testid="error-page"' in response.content


def test_history_in_the_admin_leads_to_the_append_only_history(client, start):
    task = start()
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    url = reverse("admin:processes_processinstance_history", args=[task.process_id])

    response = client.get(url, follow=True)

    change = reverse("admin:processes_processinstance_change", args=[task.process_id])
    assert response.redirect_chain[0] == (change + "#events-group", 302)
    assert b"History (append-only)" in response.content
