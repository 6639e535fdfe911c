"""What only a form's fields have: a ``file`` (its ``accept`` list and ``max_size``), and the
conditions ``show_if`` / ``required_if`` that make a field appear, or be required, when another
field (or the ``decision``) has a value.

Also the one check of an uploaded file (``file_problem``): its name, its size, and its content
type sniffed from its first bytes, never taken from the name or the client's word.

Pure: no database, no storage.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from processes.spec.conditions import MISSING, evaluate_condition, lookup
from processes.spec.types import FieldRule, FormField

MAX_FILE_BYTES = 25 * 1024 * 1024  # the most a ``max_size`` may say
DEFAULT_FILE_BYTES = 10 * 1024 * 1024  # a file field without ``max_size``, a case attachment
FILE_NAME_MAX = 200

# The content types a file is recognised as, by its first bytes (a file of another kind is
# refused: nothing the server can't name is stored).
FILE_TYPES = (
    "application/pdf",
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "text/plain",
)
ACCEPT_RE = re.compile(r"(application|image|text)/([a-z0-9.+-]+|\*)\Z")
RULE_KEYS = ("show_if", "required_if")
FORM_ONLY_KEYS = ("accept", "max_size", *RULE_KEYS)


def parse_form_extras(c, item: dict, fpath: str, ftype: str, *, in_form: bool) -> dict:
    """The form-only keys of one field, as ``FormField`` keyword arguments."""
    extras: dict[str, Any] = {}
    present = [k for k in FORM_ONLY_KEYS if k in item]
    if not in_form:
        for key in present:
            c.add(f"{fpath}.{key}", "only a form's field has this")
        return extras
    for key in ("accept", "max_size"):
        if key in item and ftype != "file":
            c.add(f"{fpath}.{key}", "only a file field has this")
    if ftype == "file":
        accept = item.get("accept", [])
        if not isinstance(accept, list) or not all(
            isinstance(a, str) and ACCEPT_RE.fullmatch(a) for a in accept
        ):
            c.add(f"{fpath}.accept", "must be a list of content types like 'application/pdf'")
        else:
            unknown = [a for a in accept if not a.endswith("/*") and a not in FILE_TYPES]
            if unknown:
                c.add(
                    f"{fpath}.accept",
                    f"unknown content type {unknown[0]!r}; one of {', '.join(FILE_TYPES)} "
                    "or 'image/*'",
                )
            extras["accept"] = tuple(dict.fromkeys(accept))
        max_size = item.get("max_size", DEFAULT_FILE_BYTES)
        if (
            isinstance(max_size, bool)
            or not isinstance(max_size, int)
            or not 1 <= max_size <= MAX_FILE_BYTES
        ):
            c.add(f"{fpath}.max_size", f"must be a number of bytes from 1 to {MAX_FILE_BYTES}")
        else:
            extras["max_size"] = max_size
    for key in RULE_KEYS:
        if key in item:
            rule = _parse_rule(c, item[key], f"{fpath}.{key}")
            if rule is not None:
                extras[key] = rule
    return extras


def _parse_rule(c, value: Any, path: str) -> FieldRule | None:
    if not isinstance(value, dict) or set(value) != {"field", "equals"}:
        c.add(path, "must be an object {field, equals}, e.g. {'field': 'decision', 'equals': 'x'}")
        return None
    name, equals = value["field"], value["equals"]
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_]{1,100}", name):
        c.add(f"{path}.field", "must be the name of another field of the form, or 'decision'")
        return None
    if equals is not None and not isinstance(equals, str | int | float | bool):
        c.add(f"{path}.equals", "must be a text, a number, true/false or null")
        return None
    return FieldRule(field=name, equals=equals)


def check_rule_targets(c, fields: tuple[FormField, ...], path: str) -> None:
    """A rule names ``decision`` or another field of the same form."""
    names = {f.name for f in fields}
    for i, f in enumerate(fields):
        for key in RULE_KEYS:
            rule = getattr(f, key)
            if rule is None:
                continue
            if rule.field == f.name:
                c.add(f"{path}[{i}].{key}.field", "a field's rule can't depend on itself")
            elif rule.field != "decision" and rule.field not in names:
                c.add(f"{path}[{i}].{key}.field", f"unknown field {rule.field!r} of this form")


def holds(rule: FieldRule | None, document: dict) -> bool:
    """Whether ``rule`` holds for the form's values (the decision under ``decision``)."""
    if rule is None:
        return True
    if lookup(document, rule.field) is MISSING and rule.equals is None:
        return True
    return evaluate_condition({"var": rule.field, "op": "eq", "value": rule.equals}, document)


def attachment_ref(value: Any) -> str:
    """A ``file`` field's value: the id of an attachment of the case (a UUID), as text."""
    try:
        return str(uuid.UUID(str(value).strip())) if isinstance(value, str) else _bad()
    except ValueError:
        return _bad()


def _bad():
    raise ValueError("must be the id of a file attached to this case")


# --- files ------------------------------------------------------------------------------------------

_MAGIC = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def sniff(head: bytes) -> str:
    """The content type of a file from its first bytes (at least 512 of them, when it has)."""
    for magic, content_type in _MAGIC:
        if head.startswith(magic):
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
            return "text/plain"
        except UnicodeDecodeError as exc:
            if exc.start >= len(head) - 3:  # a character cut by the end of the sample
                return "text/plain"
    return "application/octet-stream"


def name_problem(name: Any) -> str | None:
    """Why ``name`` can't be a file's name: empty, too long, path parts, control characters."""
    if not isinstance(name, str) or not name.strip():
        return "the file needs a name"
    if len(name) > FILE_NAME_MAX:
        return f"the file's name must be at most {FILE_NAME_MAX} characters"
    if "/" in name or "\\" in name or name.strip() in (".", "..") or ":" in name:
        return f"the file's name must not contain a path ({name!r}): just the name, 'letter.pdf'"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return "the file's name must not contain control characters"
    return None


def accepted(content_type: str, accept: tuple[str, ...]) -> bool:
    if content_type not in FILE_TYPES:
        return False
    if not accept:
        return True
    major = content_type.split("/")[0]
    return content_type in accept or f"{major}/*" in accept


def file_problem(f: FormField | None, *, name: Any, size: int, content_type: str) -> str | None:
    """Why a file can't be taken for the field ``f`` (None: a case attachment, under the
    default limits): its name, its size, its sniffed content type."""
    problem = name_problem(name)
    if problem:
        return problem
    limit = (f.max_size if f is not None else None) or DEFAULT_FILE_BYTES
    if size <= 0:
        return "the file is empty"
    if size > limit:
        return f"the file is too large: {size} bytes, at most {limit}"
    accept = f.accept if f is not None else ()
    if not accepted(content_type, accept):
        taken = ", ".join(accept or FILE_TYPES)
        return f"a file of type {content_type} is not accepted here: {taken}"
    return None
