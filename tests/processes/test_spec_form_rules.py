"""The form vocabulary's files and conditions, as the one validator applies them (pure)."""

import pytest

from processes.spec import ANY_HANDLER, parse, validate_decision
from processes.spec.form_rules import file_problem, name_problem, sniff
from tests.factories import definition_data
from tests.processes.test_attachments import FORM, make_pdf, make_png


def form_task(form=FORM):
    data = definition_data(
        "f",
        stages=[
            (
                "A",
                [
                    {
                        "task_name": "ok",
                        "task_type": "HUMAN",
                        "assigned_to": "managers",
                        "outcomes": ["approve", "reject"],
                        "form": form,
                    }
                ],
            )
        ],
    )
    spec, errors = parse(data, known_handlers=ANY_HANDLER)
    return spec.task("ok") if spec else errors


def test_the_type_is_read_from_the_bytes_not_the_name():
    assert sniff(make_pdf()) == "application/pdf"
    assert sniff(make_png()) == "image/png"
    assert sniff(b"\xff\xd8\xff\xe0rest") == "image/jpeg"
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff("plain words, accentués\n".encode()) == "text/plain"
    assert sniff(b"MZ\x90\x00\x03\x00\x00\x00\x04") == "application/octet-stream"


@pytest.mark.parametrize("name", ["../a.pdf", "dir/a.pdf", "C:\\a.pdf", "..", "a\x00.pdf", ""])
def test_a_name_with_a_path_or_control_characters_is_refused(name):
    assert name_problem(name)


def test_size_and_accept_come_from_the_field():
    letter = form_task().form[1]
    assert letter.accept == ("application/pdf", "image/png") and letter.max_size == 20000
    ok = {"name": "a.pdf", "size": 100, "content_type": "application/pdf"}
    assert file_problem(letter, **ok) is None
    assert "too large" in file_problem(letter, **{**ok, "size": 20001})
    assert "image/jpeg is not accepted" in file_problem(
        letter, **{**ok, "content_type": "image/jpeg"}
    )
    assert file_problem(None, **{**ok, "content_type": "image/jpeg"}) is None  # a case file
    assert "not accepted" in file_problem(None, **{**ok, "content_type": "application/zip"})


def test_required_if_and_show_if_follow_the_decision():
    task = form_task()
    clean, errors = validate_decision(task, "reject", {})
    assert errors == {"data.reason": ["this field is required"]}
    clean, errors = validate_decision(task, "reject", {"reason": "no budget"})
    assert errors == {} and clean == {"reason": "no budget"}
    clean, errors = validate_decision(task, "approve", {"reason": "kept?"})
    assert errors == {} and clean == {}  # not asked for: not kept, not refused


def test_a_rule_on_another_field_compares_its_declared_value():
    task = form_task(
        [
            {"name": "amount", "type": "decimal"},
            {"name": "big", "type": "boolean"},
            {"name": "second", "type": "string", "required_if": {"field": "big", "equals": True}},
            {"name": "note", "type": "string", "show_if": {"field": "amount", "equals": 10}},
        ]
    )
    _, errors = validate_decision(task, "approve", {"big": "yes"})
    assert errors == {"data.second": ["this field is required"]}
    clean, errors = validate_decision(task, "approve", {"amount": "10.0", "note": "n"})
    assert errors == {} and clean["note"] == "n"  # "10.0" as a decimal equals 10
    clean, _ = validate_decision(task, "approve", {"amount": "11", "note": "n"})
    assert "note" not in clean


def test_a_file_value_is_an_attachment_id():
    task = form_task()
    _, errors = validate_decision(task, "approve", {"letter": "letter.pdf"})
    assert errors == {"data.letter": ["must be the id of a file attached to this case"]}
    clean, errors = validate_decision(
        task, "approve", {"letter": "0D7C4A9E-1B2C-4D5E-8F90-A1B2C3D4E5F6"}
    )
    assert errors == {} and clean["letter"] == "0d7c4a9e-1b2c-4d5e-8f90-a1b2c3d4e5f6"


@pytest.mark.parametrize(
    ("form", "where"),
    [
        ([{"name": "x", "show_if": {"field": "y", "equals": 1}}], "form[0].show_if.field"),
        ([{"name": "x", "required_if": {"field": "x", "equals": 1}}], "form[0].required_if"),
        ([{"name": "x", "type": "file", "accept": ["application/zip"]}], "form[0].accept"),
        ([{"name": "x", "type": "string", "max_size": 5}], "form[0].max_size"),
    ],
)
def test_bad_rules_and_file_keys_are_spec_errors(form, where):
    errors = form_task(form)
    assert isinstance(errors, list) and any(where in e.path for e in errors), errors
