"""Start a batch from a CSV in the admin: one process per row, answered per row."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from processes.models import ProcessInstance
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def url(definition):
    return reverse("admin:processes_processdefinition_batch", args=[definition.pk])


def upload(client, definition, text, name="run.csv"):
    return client.post(
        url(definition), {"file": SimpleUploadedFile(name, text.encode(), "text/csv")}
    )


def test_csv_rows_start_processes_with_their_columns_as_input(admin_client, pizza):
    csv = "business_key,customer,size\nORDER-1,Ada,L\nORDER-2,Bob,\n,Nobody,S\nORDER-1,Ada,L\n"
    response = upload(admin_client, pizza, csv)
    assert response.status_code == 200
    page = response.content.decode()
    assert "2 started, 0 already there, 2 invalid" in page
    assert "repeats item 0 of this batch" in page
    first = ProcessInstance.objects.get(business_key="ORDER-1")
    assert first.variables == {"customer": "Ada", "size": "L"}
    assert ProcessInstance.objects.get(business_key="ORDER-2").variables == {"customer": "Bob"}
    # uploading the same file again starts nothing new
    page = upload(admin_client, pizza, csv).content.decode()
    assert "0 started, 2 already there, 2 invalid" in page
    assert ProcessInstance.objects.count() == 2


@pytest.mark.parametrize(
    "text,message",
    [
        ("customer\nAda\n", "no business_key column"),
        ("business_key,customer\n", "no process to start"),
        ("business_key,customer\nA,Ada,extra\n", "line 2 has 3 cells, the header 2"),
        ("", "The submitted file is empty"),
    ],
)
def test_a_bad_file_is_a_form_error(admin_client, pizza, text, message):
    response = upload(admin_client, pizza, text)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert ProcessInstance.objects.count() == 0


def test_not_utf8_is_a_form_error(admin_client, pizza):
    response = admin_client.post(
        url(pizza), {"file": SimpleUploadedFile("x.csv", "business_key\nÄ\n".encode("latin-1"))}
    )
    assert "not UTF-8" in response.content.decode()


def test_needs_the_start_grant(client, pizza):
    clerk = UserFactory(username="clerk", is_staff=True)
    client.force_login(clerk)
    assert client.get(url(pizza)).status_code == 403
    assert upload(client, pizza, "business_key\nA\n").status_code == 403
    assert ProcessInstance.objects.count() == 0


def test_the_definition_page_links_to_the_batch_page(admin_client, pizza):
    page = admin_client.get(
        reverse("admin:processes_processdefinition_change", args=[pizza.pk])
    ).content.decode()
    assert url(pizza) in page


@pytest.mark.parametrize(
    "text,where",
    [
        ("business_key,customer\nA,Ad\x00a\n", "line 2, column &#x27;customer&#x27;"),
        ("business_key,customer\nA,Ada\nB\x00,Bob\n", "line 3, column &#x27;business_key&#x27;"),
        ("business_key,cust\x00omer\nA,Ada\n", "line 1, column 2"),
    ],
)
def test_a_nul_byte_in_a_cell_is_a_form_error_naming_its_row_and_column(
    admin_client, pizza, text, where
):
    response = upload(admin_client, pizza, text)
    assert response.status_code == 200
    assert f"{where}: NUL characters (\\x00) are not allowed" in response.content.decode()
    assert ProcessInstance.objects.count() == 0
