"""Files on a case and conditional form fields, through the API and the inbox, with real files:
who may add and read them, what is refused, the history, and the archive."""

import datetime as dt
import hashlib
import json
import struct
import zlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from processes import engine
from processes.engine import retention
from processes.events import Actor
from processes.models import Attachment, EventType, ProcessEvent, ProcessInstance
from tests.api.conftest import client_for
from tests.factories import UserFactory, definition_data
from tests.processes.conftest import FILE_STORAGE

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")


def make_pdf(text="Signed bonus letter") -> bytes:
    """A real one-page PDF (a viewer opens it): header, objects, xref table, trailer."""
    stream = f"BT /F1 18 Tf 40 100 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 144] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return out


def make_png(width=4, height=3) -> bytes:
    """A real PNG: signature, IHDR, one IDAT of red pixels, IEND."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


FORM = [
    {"name": "reason", "type": "text", "label": "Why not",
     "show_if": {"field": "decision", "equals": "reject"},
     "required_if": {"field": "decision", "equals": "reject"}},
    {"name": "letter", "type": "file", "label": "Signed letter",
     "accept": ["application/pdf", "image/png"], "max_size": 20000},
]  # fmt: skip


def papers_definition(key="papers"):
    return definition_data(
        key,
        retention="P1D",
        stages=[
            (
                "REVIEW",
                [
                    {
                        "task_name": "approve",
                        "task_type": "HUMAN",
                        "assigned_to": "managers",
                        "outcomes": ["approve", "reject"],
                        "form": FORM,
                    }
                ],
            )
        ],
    )


@pytest.fixture
def papers(import_definition):
    import_definition(papers_definition())

    def start(key="P-1"):
        process = engine.process_start(
            definition_key="papers", business_key=key, input={}, actor=ACTOR
        ).process
        return process, process.tasks.get(name="approve")

    return start


@pytest.fixture
def people(db):
    return {
        "mia": UserFactory(username="mia", roles=["managers"]),
        "olga": UserFactory(username="olga", roles=["accountants"]),  # another team
    }


def upload(user, process, content, filename, **extra):
    headers = {k: extra.pop(k) for k in list(extra) if k.startswith("HTTP_")}
    return client_for(user).post(
        f"/api/processes/{process.pk}/attachments/",
        {"file": SimpleUploadedFile(filename, content), **extra},
        format="multipart",
        **headers,
    )


def test_a_file_goes_through_the_api_into_the_history_and_back(papers, people):
    process, task = papers()
    pdf = make_pdf()
    answer = upload(people["mia"], process, pdf, "letter.pdf", task=task.pk, field="letter")
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert body["sha256"] == hashlib.sha256(pdf).hexdigest() and body["size"] == len(pdf)
    assert body["content_type"] == "application/pdf" and body["uploaded_by"] == "mia"

    form = client_for(people["mia"]).get(f"/api/tasks/{task.pk}/").json()["form"]
    assert form[0]["show_if"] == {"field": "decision", "equals": "reject"}
    assert form[1]["accept"] == ["application/pdf", "image/png"] and form[1]["type"] == "file"
    listed = client_for(people["mia"]).get(f"/api/tasks/{task.pk}/attachments/").json()
    assert [f["id"] for f in listed["results"]] == [body["id"]]
    same = client_for(people["mia"]).get(f"/api/processes/{process.pk}/attachments/").json()
    assert [f["name"] for f in same["results"]] == ["letter.pdf"]

    download = Client().get(listed["results"][0]["download_url"])  # the link is the permission
    assert download.status_code == 200 and download["Content-Type"] == "application/pdf"
    assert b"".join(download.streaming_content) == pdf

    event = ProcessEvent.objects.get(process=process, type=EventType.ATTACHMENT_ADDED)
    assert event.data["sha256"] == body["sha256"] and event.actor_label == "mia"
    assert event.data["name"] == "letter.pdf" and event.data["size"] == len(pdf)

    done = client_for(people["mia"]).post(
        f"/api/tasks/{task.pk}/complete/",
        {"decision": "approve", "data": {"letter": body["id"]}},
        format="json",
    )
    assert done.status_code == 200, done.content
    assert done.json()["task"]["result"]["letter"] == body["id"]

    page = Client()
    page.force_login(people["mia"])
    shown = page.get(f"/inbox/tasks/{task.pk}/").content.decode()
    assert '<object data="/files/' in shown and 'type="application/pdf"' in shown  # the preview

    # a second upload of the same bytes is a new row; nothing is overwritten
    _, task2 = papers("P-2")
    again = upload(people["mia"], task2.process, pdf, "letter.pdf")
    assert again.status_code == 201 and again.json()["id"] != body["id"]
    assert Attachment.objects.filter(sha256=body["sha256"]).count() == 2


def test_another_team_sees_no_file_and_adds_none(papers, people):
    process, task = papers()
    upload(people["mia"], process, make_png(), "chart.png")
    olga = client_for(people["olga"])
    assert olga.get(f"/api/processes/{process.pk}/attachments/").status_code == 404
    assert olga.get(f"/api/tasks/{task.pk}/attachments/").status_code == 404
    assert upload(people["olga"], process, make_png(), "x.png").status_code == 404
    assert Attachment.objects.count() == 1


@pytest.mark.parametrize(
    ("content", "name", "extra", "words"),
    [
        (make_pdf() + b"x" * 30000, "big.pdf", {"field": "letter"}, "too large"),
        (b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 64, "letter.pdf", {}, "not accepted"),
        (b"plain words\n", "letter.pdf", {"field": "letter"}, "text/plain is not accepted"),
        (make_pdf(), "letter.pdf", {"name": "../../etc/letter.pdf"}, "must not contain a path"),
    ],
    ids=["too-large", "unknown-type", "type-not-in-accept", "path-in-name"],
)
def test_refused_files_get_a_400_that_says_why(papers, people, content, name, extra, words):
    process, task = papers()
    if "field" in extra:
        extra = {**extra, "task": task.pk}
    answer = upload(people["mia"], process, content, name, **extra)
    assert answer.status_code == 400, answer.content
    assert words in json.dumps(answer.json())
    assert not Attachment.objects.exists()
    assert not ProcessEvent.objects.filter(type=EventType.ATTACHMENT_ADDED).exists()


def test_a_file_field_takes_only_a_file_of_this_case(papers, people):
    process, task = papers()
    other, _ = papers("P-9")
    elsewhere = upload(people["mia"], other, make_pdf(), "a.pdf").json()["id"]
    for value in (elsewhere, "not-an-id"):
        answer = client_for(people["mia"]).post(
            f"/api/tasks/{task.pk}/complete/",
            {"decision": "approve", "data": {"letter": value}},
            format="json",
        )
        assert answer.status_code == 400
        assert "data.letter" in answer.json()["error"]["fields"]


def test_conditional_fields_through_the_api(papers, people):
    process, task = papers()
    mia = client_for(people["mia"])
    url = f"/api/tasks/{task.pk}/complete/"
    refused = mia.post(url, {"decision": "reject", "data": {}}, format="json")
    assert refused.status_code == 400
    assert refused.json()["error"]["fields"]["data.reason"] == ["this field is required"]
    done = mia.post(url, {"decision": "reject", "data": {"reason": "no budget"}}, format="json")
    assert done.status_code == 200 and done.json()["task"]["result"]["reason"] == "no budget"

    _, task2 = papers("P-2")
    url2 = f"/api/tasks/{task2.pk}/complete/"
    kept = mia.post(url2, {"decision": "approve", "data": {"reason": "x"}}, format="json")
    assert kept.status_code == 200
    assert "reason" not in kept.json()["task"]["result"]  # not asked for approve: not kept


def test_the_inbox_form_attaches_a_file_and_asks_for_the_reason(papers, people):
    process, task = papers()
    browser = Client()
    browser.force_login(people["mia"])
    url = f"/inbox/tasks/{task.pk}/decide/"
    png = make_png()

    missing = browser.post(
        url, {"decision": "reject", "letter": SimpleUploadedFile("chart.png", png)}
    )
    assert missing.status_code == 400 and b"this field is required" in missing.content
    assert not Attachment.objects.exists()  # the refused decision attached nothing

    wrong = browser.post(
        url,
        {"decision": "approve", "letter": SimpleUploadedFile("a.pdf", b"GIF89a" + b"\0" * 20)},
    )
    assert wrong.status_code == 400 and b"image/gif is not accepted" in wrong.content

    page = browser.get(f"/inbox/tasks/{task.pk}/")
    assert b'data-show-if-field="decision"' in page.content and b"multipart" in page.content

    done = browser.post(
        url,
        {"decision": "reject", "reason": "no", "letter": SimpleUploadedFile("chart.png", png)},
    )
    assert done.status_code == 302, done.content.decode()[:2000]
    attachment = Attachment.objects.get()
    task.refresh_from_db()
    assert task.result["letter"] == str(attachment.pk) and task.result["reason"] == "no"
    assert attachment.sha256 == hashlib.sha256(png).hexdigest()

    shown = browser.get(f"/inbox/tasks/{task.pk}/").content.decode()
    assert 'data-testid="attachment-preview"' in shown and '<img src="/files/' in shown
    link = shown.split('<img src="')[1].split('"')[0]
    assert Client().get(link)["Content-Type"] == "image/png"

    olga = Client()
    olga.force_login(people["olga"])
    assert olga.get(f"/inbox/tasks/{task.pk}/").status_code == 404


def test_an_expired_or_forged_link_opens_nothing(papers, people, settings):
    process, _ = papers()
    link = upload(people["mia"], process, make_pdf(), "a.pdf").json()["download_url"]
    assert Client().get(link + "x").status_code == 404
    settings.FLOWDESK_ATTACHMENT_LINK_SECONDS = -1
    assert Client().get(link).status_code == 404


def test_the_archive_carries_the_files_and_their_proof(
    papers, people, tmp_path, storages_at, django_capture_on_commit_callbacks
):
    storages_at(
        flowdesk_archive={
            "BACKEND": FILE_STORAGE,
            "OPTIONS": {"location": str(tmp_path / "archive")},
        },
        flowdesk_attachments={
            "BACKEND": FILE_STORAGE,
            "OPTIONS": {"location": str(tmp_path / "files")},
        },
    )
    process, task = papers()
    pdf = make_pdf("kept for seven years")
    attachment = upload(people["mia"], process, pdf, "letter.pdf").json()
    engine.task_decide(
        task_id=task.pk,
        actor=Actor.for_user(people["mia"]),
        decision="approve",
        data={"letter": attachment["id"]},
    )
    later = (timezone.now() + dt.timedelta(days=3)).isoformat()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("archive_processes", "--now", later)

    assert not ProcessInstance.objects.filter(pk=process.pk).exists()
    assert not Attachment.objects.exists()
    stored = [p for p in (tmp_path / "files").rglob("*") if p.is_file()]
    assert stored == []  # the stored bytes went with the case
    (archive,) = (tmp_path / "archive" / "papers").glob("archive-*.jsonl")
    line = json.loads(archive.read_text())
    (row,) = line["attachments"]
    assert row["id"] == attachment["id"] and row["sha256"] == hashlib.sha256(pdf).hexdigest()
    kept = tmp_path / "archive" / "papers" / "attachments" / row["sha256"]
    assert kept.read_bytes() == pdf  # the archive alone restores the file
    assert retention.check_line(line, {}) == []
    line["attachments"][0]["sha256"] = "0" * 64
    assert retention.check_line(line, {})  # a file the history doesn't record is caught


def test_a_large_file_sent_twice_with_one_idempotency_key_is_attached_once(papers, people):
    """Over the API's 1 MB body limit (a case file may have 10 MiB), retried with a new
    multipart boundary: the same request, answered again, one file."""
    process, _ = papers()
    pdf = make_pdf() + b"%" + b"x" * (3 * 1024 * 1024) + b"\n"
    answers = [
        upload(people["mia"], process, pdf, "scan.pdf", HTTP_IDEMPOTENCY_KEY="scan-1")
        for _ in range(2)
    ]
    assert [a.status_code for a in answers] == [201, 201], answers[0].content
    assert answers[1]["Idempotent-Replayed"] == "true"
    assert answers[0].json()["id"] == answers[1].json()["id"]
    assert Attachment.objects.get().size == len(pdf)
    other = upload(people["mia"], process, make_png(), "x.png", HTTP_IDEMPOTENCY_KEY="scan-1")
    assert other.status_code == 422  # the key, used for other bytes


def test_who_sees_the_processes_reads_the_files_and_only_operators_add(papers, people):
    from processes.models import ProcessDefinition
    from tests.api.conftest import OPERATE, VIEW, grant

    process, _ = papers()
    upload(people["mia"], process, make_pdf(), "a.pdf")
    definition = ProcessDefinition.objects.get(key="papers")
    auditor = UserFactory(username="audrey")
    grant(auditor, definition, VIEW)
    listed = client_for(auditor).get(f"/api/processes/{process.pk}/attachments/")
    assert listed.status_code == 200 and len(listed.json()["results"]) == 1
    refused = upload(auditor, process, make_pdf(), "b.pdf")
    assert refused.status_code == 403
    operator = UserFactory(username="otto")
    grant(operator, definition, VIEW, OPERATE)
    assert upload(operator, process, make_pdf(), "b.pdf").status_code == 201


def test_a_correction_of_a_file_field_names_a_file_of_this_case(papers, people):
    from processes.errors import InvalidInput

    process, _ = papers()
    mine = upload(people["mia"], process, make_pdf(), "a.pdf").json()["id"]
    other, _ = papers("P-3")
    theirs = upload(people["mia"], other, make_pdf("other"), "b.pdf").json()["id"]
    with pytest.raises(InvalidInput) as refused:
        engine.process_correct_variables(
            process_id=process.pk, actor=ACTOR, set={"approve.letter": theirs}, reason="fix"
        )
    assert refused.value.fields == {
        "set.approve.letter": ["must be the id of a file attached to this case"]
    }
    fixed = engine.process_correct_variables(
        process_id=process.pk, actor=ACTOR, set={"approve.letter": mine}, reason="fix"
    )
    assert fixed.variables["approve"]["letter"] == mine


def test_the_admin_instance_page_lists_the_files_with_links(papers, people, admin_client):
    process, _ = papers()
    upload(people["mia"], process, make_pdf(), "contract.pdf")
    page = admin_client.get(f"/admin/processes/processinstance/{process.pk}/change/")
    text = page.content.decode()
    assert page.status_code == 200 and 'data-testid="admin-attachment"' in text
    link = text.split('data-testid="admin-attachment"><td><a href="')[1].split('"')[0]
    assert "contract.pdf" in text and Client().get(link)["Content-Type"] == "application/pdf"
