"""No dead ends: where a login lands, the Admin link, the admin for non-staff, View site / View
on site, and styled error pages with a way back."""

import pytest
from django.urls import reverse

from processes.models import ProcessInstance
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def login(client, username):
    return client.post(reverse("tasks_inbox:login"), {"username": username, "password": "pw"})


def test_staff_land_in_the_admin_and_managers_in_their_inbox(client):
    UserFactory(username="root", is_staff=True, is_superuser=True)
    UserFactory(username="mia", roles=["managers"])
    assert login(client, "root")["Location"] == reverse("admin:index")
    assert 'data-testid="admin-link"' in client.get(reverse("tasks_inbox:inbox")).content.decode()
    client.logout()
    assert login(client, "mia")["Location"] == "/inbox/"
    assert 'data-testid="admin-link"' not in client.get("/inbox/").content.decode()
    # a ?next= still wins
    client.logout()
    response = client.post(
        reverse("tasks_inbox:login") + "?next=/inbox/?tab=done",
        {"username": "root", "password": "pw"},
    )
    assert response["Location"] == "/inbox/?tab=done"


def test_a_manager_opening_the_admin_is_sent_back_to_the_inbox(client):
    client.force_login(UserFactory(username="mia", roles=["managers"]))
    response = client.get("/admin/", follow=True)
    assert response.redirect_chain[-1][0] == reverse("tasks_inbox:inbox")
    assert "The admin is for administrators; your tasks are here." in response.content.decode()
    # not logged in: the admin's own login form
    client.logout()
    assert client.get("/admin/login/").status_code == 200


def test_view_site_and_view_on_site(admin_client, start, people):
    from django.contrib import admin

    assert admin.site.site_url == "/inbox/"
    task = start("EMP-7")
    process = ProcessInstance.objects.get(pk=task.process_id)
    page = admin_client.get(reverse("admin:processes_processinstance_change", args=[process.pk]))
    # the instance's human task as its people see it, not the admin page itself again
    assert f'href="{reverse("tasks_inbox:task", args=[task.pk])}" class="viewsitelink"' in (
        page.content.decode()
    )


def test_error_pages_are_styled_with_a_way_back(client):
    UserFactory(username="mia", roles=["managers"])
    client.post(reverse("tasks_inbox:login"), {"username": "mia", "password": "pw"})
    missing = client.get(reverse("tasks_inbox:task", args=[999999]))
    body = missing.content.decode()
    assert missing.status_code == 404
    assert "No such task in your inbox." in body
    assert 'href="/inbox/">Back to your inbox' in body and "flowdesk/app.css" in body
    nowhere = client.get("/no/such/page/").content.decode()
    assert "There is no page at this address." in nowhere and "Resolver404" not in nowhere
