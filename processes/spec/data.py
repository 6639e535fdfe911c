"""Declared, typed process data: the one check every value entering a process goes through.

A definition declares its ``input`` and each SERVICE task its ``result`` with the vocabulary of
a human task's ``form`` (string, text, integer, decimal, boolean, date, choice; required,
min/max, choices, pattern, places), field names being dotted paths (``bonus.amount``).
``validate`` checks a document against such a declaration and converts what it accepts (text
from a CSV cell or a form to the declared type; money to a canonical decimal string, never a
float); an undeclared definition's data is free-form but still passes ``free_problems``
(no control characters, no non-finite number). A form's ``file`` field holds an attachment's
id; its ``show_if``/``required_if`` (``form_rules``) are applied here too, reading the decision
from ``context``. ``check_variable_changes`` applies the same rules to a correction's paths,
and ``normalize_business_key`` is the one rule for keys.

Pure: no database, no Django model.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from processes.spec import form_rules
from processes.spec.business_keys import (  # noqa: F401  (the one key rule, re-exported)
    BUSINESS_KEY_MAX,
    normalize_business_key,
)
from processes.spec.conditions import MISSING, lookup
from processes.spec.limits import MAX_DEPTH
from processes.spec.types import MAX_LIST_ITEMS, FormField

NUMBER_LIMIT = Decimal("1e15")  # integer and decimal values, as the definition's numbers
MAX_PLACES = 10  # a decimal's places, declared or not (keeps its canonical text short)
STRING_MAX = 1000  # characters of a ``string`` value (one line)
TEXT_MAX = 10_000  # characters of a ``text`` value
MAX_PROBLEMS = 50  # problems reported for one document

# C0/C1 control characters, lone surrogates, and the bidirectional embeddings, overrides and
# isolates (U+202A-U+202E, U+2066-U+2069) that make text display other than it reads.
_BIDI_AND_SURROGATES = r"\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_UNSAFE_LINE_RE = re.compile(r"[\x00-\x1f" + _BIDI_AND_SURROGATES + "]")
_UNSAFE_TEXT_RE = re.compile(r"[\x00-\x08\x0b-\x1f" + _BIDI_AND_SURROGATES + "]")  # LF, tab

TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")


def text_problem(value: str, *, multiline: bool = False) -> str | None:
    """Why ``value`` can't be stored as text, or None: a control character (``multiline``
    allows line feed and tab), a bidi override or a lone surrogate."""
    found = (_UNSAFE_TEXT_RE if multiline else _UNSAFE_LINE_RE).search(value)
    if found is None:
        return None
    char = found.group()
    code = f"U+{ord(char):04X}"
    if "\u202a" <= char <= "\u202e" or "\u2066" <= char <= "\u2069":
        return f"must not contain bidirectional control characters ({code})"
    if "\ud800" <= char <= "\udfff":
        return "must be valid Unicode (no lone surrogates)"
    return f"must not contain control characters ({code})"


# --- one value ---------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=512)
def compiled_pattern(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def coerce(f: FormField, value: Any) -> Any:
    """``value`` as ``f`` declares it (text converted to the type), or ValueError saying why not.

    Integers stay JSON integers; a decimal becomes its canonical text (``"409.32"``, with
    exactly ``places`` places when declared): a JSON float is refused for a decimal, since
    binary floating point can't hold money exactly.
    """
    if f.type in ("string", "text"):
        return _coerce_text(f, value)
    if f.type == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
            return value.strip().lower() in TRUE_WORDS
        raise ValueError("must be true or false")
    if f.type == "choice":
        if isinstance(value, str) and value.strip() in f.choices:
            return value.strip()
        raise ValueError(f"must be one of: {', '.join(f.choices)}")
    if f.type == "date":
        return _coerce_date(value)
    if f.type == "list":
        return _coerce_list(f, value)
    if f.type == "file":
        return form_rules.attachment_ref(value)
    return _coerce_number(f, value)


def _coerce_list(f: FormField, value: Any) -> list:
    """A JSON array, or text (a CSV cell, a form input) of comma-separated elements."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")] if value.strip() else []
    if not isinstance(value, list):
        raise ValueError("must be a list")
    low = 0 if f.min is None else f.min
    high = MAX_LIST_ITEMS if f.max is None else min(f.max, MAX_LIST_ITEMS)
    if not low <= len(value) <= high:
        raise ValueError(f"must have from {low:g} to {high:g} elements (it has {len(value)})")
    clean = []
    for index, element in enumerate(value):
        if f.items is None or is_empty(f.items, element):
            raise ValueError(f"element {index}: must not be empty")
        try:
            clean.append(coerce(f.items, element))
        except ValueError as exc:
            raise ValueError(f"element {index}: {exc}") from None
    return clean


def _coerce_text(f: FormField, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be text")
    if f.type == "text":
        value = value.replace("\r\n", "\n").replace("\r", "\n")  # a browser's textarea
        limit = TEXT_MAX
    else:
        value = value.strip()
        limit = STRING_MAX
    if len(value) > limit:
        raise ValueError(f"must be at most {limit} characters")
    problem = text_problem(value, multiline=f.type == "text")
    if problem:
        raise ValueError(problem)
    if f.pattern is not None and not compiled_pattern(f.pattern).fullmatch(value):
        raise ValueError(f"must match the pattern {f.pattern}")
    return value


def _coerce_date(value: Any) -> str:
    if isinstance(value, str) and len(value.strip()) <= 20:
        try:
            return dt.date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            pass
    raise ValueError("must be a date YYYY-MM-DD")


def moment(value: Any) -> dt.datetime:
    """An ISO 8601 date-time (a TIMER's ``until``, a message's ``occurred_at``) as an aware
    datetime (UTC when it names no offset); ValueError saying what it must be."""
    if isinstance(value, str) and 10 <= len(value.strip()) <= 40:
        try:
            found = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            found = None
        if found is not None:
            return found if found.tzinfo else found.replace(tzinfo=dt.UTC)
    raise ValueError("must be an ISO 8601 date-time like 2026-12-24T18:00:00+01:00")


def _coerce_number(f: FormField, value: Any) -> int | str:
    if isinstance(value, bool):
        raise ValueError("must be a number")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        if f.type == "decimal":
            raise ValueError(
                'must be a decimal written as text, e.g. "409.32" (a JSON number with a '
                "fraction is a binary float)"
            )
        if abs(value) > NUMBER_LIMIT:
            raise ValueError("must be between -1e15 and 1e15")
        if not value.is_integer():
            raise ValueError("must be a whole number")
        number = Decimal(int(value))
    elif isinstance(value, int):
        if abs(value) > NUMBER_LIMIT:  # before Decimal(): an int of millions of digits
            raise ValueError("must be between -1e15 and 1e15")
        number = Decimal(value)
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError("must be a number") from None
    else:
        raise ValueError("must be a number")
    if not number.is_finite():
        raise ValueError("must be a finite number")
    # Bounded first: quantize below stays within the decimal context's 28 digits.
    if abs(number) > NUMBER_LIMIT:
        raise ValueError("must be between -1e15 and 1e15")
    if f.type == "integer" and number != number.to_integral_value():
        raise ValueError("must be a whole number")
    if f.min is not None and number < Decimal(str(f.min)):
        raise ValueError(f"must be at least {f.min:g}")
    if f.max is not None and number > Decimal(str(f.max)):
        raise ValueError(f"must be at most {f.max:g}")
    if f.type == "integer":
        return int(number)
    places = MAX_PLACES if f.places is None else f.places
    fixed = number.quantize(Decimal(1).scaleb(-places))
    if fixed != number:
        raise ValueError(f"must have at most {places} decimal place{'s' if places != 1 else ''}")
    if f.places is None:
        fixed = number.normalize()
    if fixed == 0:
        fixed = abs(fixed)  # no "-0.00"
    return format(fixed, "f")


# --- free-form data -----------------------------------------------------------------------------------


def free_problems(data: Any, prefix: str = "") -> dict[str, list[str]]:
    """What an undeclared document may not hold either, by path: control characters (line
    feed and tab are fine in values), bidi overrides, lone surrogates, non-finite numbers,
    nesting deeper than the API's parser takes."""
    problems: dict[str, list[str]] = {}
    stack: list[tuple[Any, str, int]] = [(data, prefix, 0)]
    while stack and len(problems) < MAX_PROBLEMS:
        value, path, depth = stack.pop()
        where = path or "$"
        if depth > MAX_DEPTH:
            problems.setdefault(where, []).append(f"nested deeper than {MAX_DEPTH} levels")
        elif isinstance(value, str):
            problem = text_problem(value, multiline=True)
            if problem:
                problems.setdefault(where, []).append(problem)
        elif isinstance(value, float | Decimal):
            finite = value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)
            if not finite:
                problems.setdefault(where, []).append("must be a finite number")
        elif isinstance(value, dict):
            for key, item in value.items():
                name = str(key)
                problem = text_problem(name)
                if problem:
                    problems.setdefault(where, []).append(f"a key {problem}")
                    continue
                stack.append((item, f"{path}.{name}" if path else name, depth + 1))
        elif isinstance(value, list | tuple):
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))
    return dict(sorted(problems.items()))


# --- a declared document ------------------------------------------------------------------------------


def is_empty(f: FormField, value: Any) -> bool:
    """Not given: missing or null, or blank where blank is no value of the type (a number's
    empty CSV cell); an empty ``string``/``text`` is a value (refused only when required)."""
    if value is MISSING or value is None:
        return True
    return isinstance(value, str) and value == "" and f.type not in ("string", "text")


def validate(
    fields: tuple[FormField, ...] | None, data: Any, *, closed: bool = True, context=None
) -> tuple[Any, dict[str, list[str]]]:
    """Check ``data`` against the declared ``fields`` (None: undeclared, free-form);
    return (the clean data, {path: [messages]}), the clean data holding each declared value
    converted to its type. ``closed``: a field not declared is refused; otherwise it is kept
    after the free-form check. ``context``: values a form's ``show_if``/``required_if`` may
    read besides its fields (the ``decision``)."""
    if fields is None:
        return data, free_problems(data)
    if not isinstance(data, dict):
        return {}, {"$": ["must be an object"]}
    data, errors = _expand_dotted(data)
    clean: dict = {}
    for f in fields:
        value = lookup(data, f.name)
        if is_empty(f, value) or ((f.required or f.required_if) and value == ""):
            continue
        try:
            _put(clean, f.name, coerce(f, value))
        except ValueError as exc:
            errors[f.name] = [str(exc)]
    known = {**clean, **(context or {})}  # what show_if / required_if read: values as declared
    for f in fields:
        if f.show_if is not None and not form_rules.holds(f.show_if, known):
            clean.pop(f.name, None)  # a field not asked for is not kept (nor refused)
            errors.pop(f.name, None)
        elif (f.required or (f.required_if and form_rules.holds(f.required_if, known))) and (
            lookup(clean, f.name) is MISSING and f.name not in errors
        ):
            errors[f.name] = ["this field is required"]
    _check_undeclared(fields, data, clean, errors, closed)
    return clean, dict(sorted(errors.items()))


def _check_undeclared(fields, data: dict, clean: dict, errors: dict, closed: bool) -> None:
    """Every path of ``data`` is a declared field or an object on the way to one; anything
    else is refused (``closed``), or kept in ``clean`` after the free-form check."""
    leaves = {f.name for f in fields}
    objects = {f.name.rsplit(".", i)[0] for f in fields for i in range(1, f.name.count(".") + 1)}
    stack = [(data, "")]
    while stack:
        obj, prefix = stack.pop()
        for key, value in obj.items():
            path = f"{prefix}{key}"
            if path in leaves:
                continue
            if path in objects:
                if isinstance(value, dict):
                    stack.append((value, path + "."))
                elif value is not None:
                    errors[path] = ["must be an object"]
            elif closed:
                errors[path] = ["unknown field"]
            else:
                problems = free_problems(value, path)
                if problems:
                    errors.update(problems)
                else:
                    _put(clean, path, value)


def _expand_dotted(data: dict) -> tuple[dict, dict[str, list[str]]]:
    """``{"bonus.amount": "3"}`` (a CSV header, a form) as ``{"bonus": {"amount": "3"}}``."""
    if not any("." in str(k) for k in data):
        return data, {}
    out: dict = {}
    errors: dict[str, list[str]] = {}
    for key, value in sorted(data.items(), key=lambda kv: str(kv[0]).count(".")):
        parts = str(key).split(".")
        target = out
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                errors[str(key)] = ["conflicts with another field of the same path"]
                break
        else:
            if parts[-1] in target:
                errors[str(key)] = ["conflicts with another field of the same path"]
            else:
                target[parts[-1]] = value
    return out, errors


def _put(doc: dict, path: str, value: Any) -> None:
    parts = path.split(".")
    for part in parts[:-1]:
        doc = doc.setdefault(part, {})
    doc[parts[-1]] = value


# --- the variables of a process -------------------------------------------------------------------


def declared_variables(spec) -> dict[str, FormField]:
    """Every declared variable path of ``spec``: its input fields, each SERVICE task's result
    fields and each HUMAN task's form fields under the task's name."""
    paths: dict[str, FormField] = {}
    for f in spec.input or ():
        paths[f.name] = f
    for task in spec.tasks:
        fields = task.result if task.type == "SERVICE" else task.form
        for f in fields or ():
            paths[f"{task.name}.{f.name}"] = f
    return paths


def declared_field(spec, path: str) -> FormField | None:
    return declared_variables(spec).get(path)


def _closed_scope(spec, path: str) -> str | None:
    """The declaration that owns ``path`` when nothing undeclared may go there: "input" (a
    definition that declares its input) or a SERVICE task's result; None: free-form there."""
    root = path.split(".", 1)[0]
    task = next((t for t in spec.tasks if t.name == root), None)
    if task is None:
        return "the definition's input" if spec.input is not None else None
    if task.type == "SERVICE" and task.result is not None:
        return f"the result of {task.name}"
    return None


def check_variable_changes(spec, set_values: dict, unset=()) -> tuple[dict, dict[str, list[str]]]:
    """A correction (or Skip's "set") checked path by path against the declarations:
    ``set_values`` maps a variable path to its new value. Returns (the values converted to their
    declared types, {path: [messages]}); an unset that would remove a required field is
    refused under its path."""
    paths = declared_variables(spec)
    results = {t.name for t in spec.tasks if t.type == "SERVICE" and t.result is not None}
    clean: dict = {}
    errors: dict[str, list[str]] = {}
    for path, value in set_values.items():
        field = paths.get(path)
        below = {p[len(path) + 1 :]: f for p, f in paths.items() if p.startswith(path + ".")}
        above = next((p for p in paths if path.startswith(p + ".")), None)
        whole_result = path in results
        if field is not None:
            if is_empty(field, value):
                errors[path] = ["give a value, or remove the variable instead"]
                continue
            try:
                clean[path] = coerce(field, value)
            except ValueError as exc:
                errors[path] = [str(exc)]
        elif below or whole_result:
            scope = _closed_scope(spec, path)
            fields = tuple(_renamed(f, name) for name, f in below.items())
            value_clean, problems = validate(fields, value, closed=scope is not None)
            for sub, messages in problems.items():
                errors[path if sub == "$" else f"{path}.{sub}"] = messages
            clean[path] = value_clean
        elif above is not None:
            errors[path] = [f"{above} is a {paths[above].type}: it has no fields"]
        elif (scope := _closed_scope(spec, path)) is not None:
            errors[path] = [f"unknown field: not declared in {scope}"]
        else:
            problems = free_problems(value, path)
            errors.update(problems)
            clean[path] = value
    for path in unset:
        field = paths.get(path)
        required = [p for p, f in paths.items() if f.required and p.startswith(path + ".")]
        if (field is not None and field.required) or (
            required and _closed_scope(spec, path) == "the definition's input"
        ):
            errors[path] = ["is required: it can't be removed (set another value instead)"]
    return clean, errors


def _renamed(f: FormField, name: str) -> FormField:
    from dataclasses import replace

    return replace(f, name=name)
