"""The absences page: record an absence, see it, end it; tasks show "on behalf of"."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from processes import engine
from processes.events import Actor
from processes.models import Absence
from tests.factories import UserFactory
from tests.tasks_inbox.conftest import approval_definition

pytestmark = pytest.mark.django_db


def day(offset=0):
    return (timezone.localdate() + dt.timedelta(days=offset)).isoformat()


def test_recording_an_absence_passes_held_tasks_to_the_substitute(client, import_definition):
    import_definition(approval_definition(assignee="manager"))
    anna = UserFactory(username="anna", roles=["managers"])
    ben = UserFactory(username="ben", roles=["managers"])
    UserFactory(username="olga", roles=["accountants"])
    task = engine.process_start(
        definition_key="approval",
        business_key="EMP-7",
        input={"manager": "anna", "bonus": 10},
        actor=Actor.system("t"),
    ).process.tasks.get(name="approve_bonus")
    client.force_login(anna)

    page = client.get(reverse("tasks_inbox:absences")).content.decode()
    assert "No absence recorded" in page
    assert ">ben</option>" in page and "olga" not in page  # people of her roles only

    response = client.post(
        reverse("tasks_inbox:absences"),
        {"starts_on": day(0), "ends_on": day(3), "substitute": ben.pk, "note": "holiday"},
        follow=True,
    )
    body = response.content.decode()
    assert f"Absence recorded: {day(0)} to {day(3)}; your tasks go to ben meanwhile." in body
    inbox = client.get(reverse("tasks_inbox:inbox")).content.decode()
    assert f"You are away until {day(3)}: your new tasks go to ben." in inbox

    client.force_login(ben)
    inbox = client.get(reverse("tasks_inbox:inbox") + "?tab=assigned").content.decode()
    assert "EMP-7" in inbox and "on behalf of anna" in inbox
    page = client.get(reverse("tasks_inbox:task", args=[task.pk])).content.decode()
    assert "On behalf of <strong>anna</strong>, who is away: you cover for them." in page
    assert f"Approve bonus passed to ben on behalf of anna: anna is away until {day(3)}" in (page)


def test_a_bad_absence_is_shown_next_to_its_field(client):
    anna = UserFactory(username="anna", roles=["managers"])
    client.force_login(anna)

    response = client.post(
        reverse("tasks_inbox:absences"), {"starts_on": day(3), "ends_on": day(1)}
    )

    assert response.status_code == 400
    body = response.content.decode()
    assert "The absence was not recorded" in body
    assert "must be on or after the first day" in body
    assert not Absence.objects.exists()


def test_ending_an_absence_from_the_page(client):
    anna = UserFactory(username="anna", roles=["managers"])
    absence = engine.absence_record(actor=Actor.for_user(anna), starts_on=day(-1), ends_on=day(5))
    other = UserFactory(username="ben")
    client.force_login(other)
    assert client.post(reverse("tasks_inbox:absence_end", args=[absence.pk])).status_code == 404

    client.force_login(anna)
    response = client.post(reverse("tasks_inbox:absence_end", args=[absence.pk]), follow=True)

    assert "Absence ended: new tasks come to you again." in response.content.decode()
    absence.refresh_from_db()
    assert absence.ends_on.isoformat() == day(0)
