"""Typed field declarations, one at a time: a human task's ``form``, a definition's ``input``
and a SERVICE task's ``result`` (name, type, bounds, ``pattern``), each problem to the collector
with its path. The values themselves are checked by ``spec.data``."""

from __future__ import annotations

import re
import re._constants as re_constants
import re._parser as re_parser
from typing import Any

from processes.spec import form_rules
from processes.spec.fields import _Collector, _is_number
from processes.spec.labels import parse_label
from processes.spec.types import (
    DATA_FIELD_TYPES,
    FORM_FIELD_TYPES,
    VALUE_TYPES,
    VAR_PATH_RE,
    FormField,
)


def _parse_form(c: _Collector, value: Any, path: str) -> tuple[FormField, ...]:
    """A human task's ``form``: fields named by identifiers, ``decision``/``comment`` reserved."""
    if value is None:
        return ()
    fields = parse_fields(c, value, path, dotted=False, reserved=("decision", "comment"))
    form_rules.check_rule_targets(c, fields, path)
    return fields


MAX_FIELDS = 200  # declared fields in one list
MAX_PATTERN = 200  # characters of a ``pattern``


def parse_fields(
    c: _Collector, value: Any, path: str, *, dotted: bool, reserved=()
) -> tuple[FormField, ...]:
    """A list of typed fields (a form, a definition's ``input``, a SERVICE task's
    ``result``); ``dotted``: names may be paths such as ``bonus.amount``."""
    if not isinstance(value, list):
        c.add(path, "must be a list of fields {name, type, required, ...}")
        return ()
    if len(value) > MAX_FIELDS:
        c.add(path, f"at most {MAX_FIELDS} fields")
        return ()
    fields: list[FormField] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        fpath = f"{path}[{i}]"
        if not isinstance(item, dict):
            c.add(fpath, "must be an object {name, type, label, required}")
            continue
        unknown = set(item) - FIELD_KEYS
        if unknown:
            c.add(fpath, f"unknown key(s): {', '.join(sorted(map(str, unknown)))}")
        name = item.get("name")
        if not isinstance(name, str) or not VAR_PATH_RE.fullmatch(name):
            c.add(f"{fpath}.name", "must be a variable path like 'bonus.amount'" if dotted
                  else "must be an identifier")  # fmt: skip
            continue
        if not dotted and "." in name:
            c.add(f"{fpath}.name", "must be an identifier")
            continue
        if name in seen or name in reserved:
            c.add(f"{fpath}.name", f"duplicate or reserved field name {name!r}")
            continue
        clash = next(
            (o for o in seen if o.startswith(name + ".") or name.startswith(o + ".")), None
        )
        if clash is not None:
            c.add(f"{fpath}.name", f"{name!r} and {clash!r}: a field can't also hold fields")
            continue
        seen.add(name)
        field = _parse_field(c, item, fpath, name, DATA_FIELD_TYPES if dotted else FORM_FIELD_TYPES)
        if field is not None:
            fields.append(field)
    return tuple(fields)


FIELD_KEYS = {
    *("name", "type", "label", "required", "choices", "min", "max", "pattern", "places", "items"),
    *form_rules.FORM_ONLY_KEYS,
}


def _parse_field(
    c: _Collector, item: dict, fpath: str, name: str, types=VALUE_TYPES
) -> FormField | None:
    ftype = item.get("type", "string")
    if ftype not in types:
        c.add(f"{fpath}.type", f"unknown type {ftype!r}; one of {', '.join(types)}")
        return None
    items = None
    if ftype == "list":
        raw_items = item.get("items")
        if not isinstance(raw_items, dict) or "name" in raw_items:
            c.add(f"{fpath}.items", "a list needs its items: {type, pattern, ...} (no name)")
            return None
        items = _parse_field(c, raw_items, f"{fpath}.items", "item")
        if items is None:
            return None
    elif "items" in item:
        c.add(f"{fpath}.items", "only a list field has items")
    choices = item.get("choices", [])
    if ftype == "choice" and (
        not isinstance(choices, list) or not choices or not all(isinstance(x, str) for x in choices)
    ):
        c.add(f"{fpath}.choices", "a choice field needs a non-empty list of strings")
        return None
    bounds = {}
    for bound in ("min", "max"):
        if bound in item:
            if not _is_number(item[bound]):
                c.add(f"{fpath}.{bound}", "must be a number")
            else:
                bounds[bound] = float(item[bound])
    if "min" in bounds and "max" in bounds and bounds["min"] > bounds["max"]:
        c.add(f"{fpath}.max", "must not be less than min")
    pattern = item.get("pattern")
    if pattern is not None:
        problem = pattern_problem(pattern)
        if ftype not in ("string", "text"):
            c.add(f"{fpath}.pattern", "only a string or text field has a pattern")
            pattern = None
        elif problem:
            c.add(f"{fpath}.pattern", problem)
            pattern = None
    places = item.get("places")
    if places is not None:
        if ftype != "decimal":
            c.add(f"{fpath}.places", "only a decimal field has places")
            places = None
        elif isinstance(places, bool) or not isinstance(places, int) or not 0 <= places <= 10:
            c.add(f"{fpath}.places", "must be a whole number from 0 to 10")
            places = None
    label = parse_label(c, item.get("label", ""), f"{fpath}.label")
    required = item.get("required", False)
    if not isinstance(required, bool):
        c.add(f"{fpath}.required", "must be true or false")
        required = False
    extras, in_form = {}, types is FORM_FIELD_TYPES
    if types is not VALUE_TYPES:  # (a list's items: other keys ignored, as the schema says)
        extras = form_rules.parse_form_extras(c, item, fpath, ftype, in_form=in_form)
    return FormField(
        name=name,
        type=ftype,
        label=label,
        required=required,
        choices=tuple(choices) if ftype == "choice" else (),
        pattern=pattern,
        places=places,
        items=items,
        **bounds,
        **extras,
    )


def pattern_problem(pattern: Any) -> str | None:
    """Why ``pattern`` can't be a field's pattern: not a short regular expression, or one that
    repeats a repetition (``(a+)+``), which can take exponential time on a crafted value."""
    if not isinstance(pattern, str) or not pattern or len(pattern) > MAX_PATTERN:
        return f"must be a regular expression of at most {MAX_PATTERN} characters"
    try:
        parsed = re_parser.parse(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        return f"not a regular expression: {exc}"
    if _nested_repeat(parsed, inside=False):
        return "a repetition inside a repetition (like (a+)+) can take exponential time"
    return None


_REPEATS = (re_constants.MAX_REPEAT, re_constants.MIN_REPEAT, re_constants.POSSESSIVE_REPEAT)


def _nested_repeat(items, inside: bool) -> bool:
    for op, arg in items:
        if op in _REPEATS:
            high, sub = arg[1], arg[2]
            unbounded = high > 100  # (MAXREPEAT is a large int)
            if (unbounded and inside) or _nested_repeat(sub, inside or unbounded):
                return True
        elif op == re_constants.SUBPATTERN or op in (re_constants.ASSERT, re_constants.ASSERT_NOT):
            if _nested_repeat(arg[-1], inside):
                return True
        elif op == re_constants.BRANCH and any(_nested_repeat(b, inside) for b in arg[1]):
            return True
    return False
