"""Search by business data: a case-insensitive partial business key, and the variables the
definition declares searchable (``search``), the same rule in the admin, the inbox and the API."""

import pytest
from django.urls import reverse
from guardian.shortcuts import assign_perm

from processes import engine
from processes import spec as spec_module
from processes.events import Actor
from processes.models import ProcessInstance
from tests.api.conftest import VIEW, client_for
from tests.factories import UserFactory, definition_data
from tests.test_authority_regressions import salary_case, salary_data

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("test")


@pytest.fixture
def salary():
    return engine.definition_import(data=salary_data(), actor=SYSTEM)[0]


@pytest.fixture
def cases(salary):
    """E013 (Ada Lovelace, bob's team) waiting for approval, E021 just started."""
    UserFactory(username="bob", roles=["managers"])
    ada = salary_case("E013", manager="bob")
    ada.refresh_from_db()
    other = engine.process_start(
        definition_key="salary",
        business_key="E021-2026-11",
        input={"employee_id": "E021", "period": "2026-11"},
        actor=SYSTEM,
    ).process
    return ada, other


def test_the_definition_declares_its_searchable_variables():
    spec = spec_module.parse_or_raise(salary_data(), known_handlers=spec_module.ANY_HANDLER)
    assert spec.search == ("employee_id", "salary_base.employee_name")
    one = spec_module.parse_or_raise(definition_data("one", search="employee_id"))
    assert one.search == ("employee_id",)
    with pytest.raises(spec_module.SpecValidationError) as refused:
        spec_module.parse_or_raise(definition_data("bad", search=["ok", "not a path"]))
    assert [e.path for e in refused.value.errors] == ["search"]


def test_what_a_case_is_found_by_follows_its_variables(cases):
    ada, other = cases
    # the employee's name came with the salary base: the engine indexed it then
    assert ada.search_text == "e013-2026-11\ne013\nada"
    assert other.search_text == "e021-2026-11\ne021"
    assert spec_module.search_term("  ADA\x00 ") == "ada"


def test_the_api_finds_cases_by_part_of_the_key_or_the_name_in_any_case(cases):
    ada, other = cases
    caller = UserFactory(username="vera")
    assign_perm(VIEW, caller, ada.definition)
    api = client_for(caller)

    def found(q):
        response = api.get("/api/processes/", {"q": q})
        assert response.status_code == 200
        return {row["business_key"] for row in response.json()["results"]}

    assert found("e013") == {"E013-2026-11"}
    assert found("aDa") == {"E013-2026-11"}
    assert found("2026-11") == {"E013-2026-11", "E021-2026-11"}
    assert found("nobody") == set()
    assert found("") == {"E013-2026-11", "E021-2026-11"}
    # the variables nobody declared searchable are not searched (the team, the manager)
    assert found("engineering") == set()
    # a caller who sees nothing finds nothing
    assert (
        client_for(UserFactory(username="nemo"))
        .get("/api/processes/", {"q": "ada"})
        .json()["results"]
        == []
    )


def test_the_admin_search_box_finds_by_name(client, cases):
    ada, _ = cases
    admin = UserFactory(username="root")
    admin.is_staff = admin.is_superuser = True
    admin.save()
    client.force_login(admin)
    page = client.get(reverse("admin:processes_processinstance_changelist"), {"q": "LOVE ada"})
    assert page.status_code == 200
    page = client.get(reverse("admin:processes_processinstance_changelist"), {"q": "Ada"})
    body = page.content.decode()
    assert "E013-2026-11" in body and "E021-2026-11" not in body
    by_id = client.get(reverse("admin:processes_processinstance_changelist"), {"q": str(ada.pk)})
    assert "E013-2026-11" in by_id.content.decode()


def test_the_inbox_finds_the_managers_task_by_the_employees_name(client, cases):
    bob = (
        ProcessInstance.objects.get(business_key="E013-2026-11")
        .tasks.get(name="approve_bonus")
        .assignee
    )
    client.force_login(bob)
    url = reverse("tasks_inbox:inbox")
    assert "E013-2026-11" in client.get(url, {"q": "ada", "tab": "assigned"}).content.decode()
    assert "E013-2026-11" not in client.get(url, {"q": "zed", "tab": "assigned"}).content.decode()
