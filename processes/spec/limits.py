"""What a definition may hold so that it also runs: the bounds checked by the parser.

A definition that validates must start and run: every duration fits django-q's alarm (a signed
32-bit number of seconds, step timeout plus lease margin) and the date range (now + due), every
number is finite and bounded, every string is storable in PostgreSQL (no NUL, no lone
surrogate), nesting is bounded, and the task count keeps one start's INSERTs and the diagram
small (``FLOWDESK_MAX_TASKS``).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from django.conf import settings

# 10 years: far below django-q's alarm limit (2**31 - 1 s, about 68 years) with room for the lease
# margin, and now + 10 years is far from datetime's year 9999.
MAX_DURATION = dt.timedelta(days=3650)
MAX_DURATION_TEXT = "P3650D"
NUMBER_LIMIT = 10**15  # as a form's numbers (decisions.FORM_NUMBER_LIMIT)
MAX_DEPTH = 64  # as the API's JSON parser
DEFAULT_MAX_TASKS = 500


def max_tasks() -> int:
    return int(getattr(settings, "FLOWDESK_MAX_TASKS", DEFAULT_MAX_TASKS))


def is_bounded_number(value: Any) -> bool:
    """A JSON number the engine can store and compute with (bool is not a number)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -NUMBER_LIMIT <= value <= NUMBER_LIMIT
    if isinstance(value, float):
        return math.isfinite(value) and abs(value) <= NUMBER_LIMIT
    return False


def _string_problem(value: str) -> str | None:
    if "\x00" in value:
        return "must not contain NUL (\\u0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (no lone surrogates)"
    return None


def storage_problems(data: Any) -> list[tuple[str, str]]:
    """Every value of ``data`` that PostgreSQL or the engine can't take, as (path, message).

    Iterative, so a document nested 10,000 deep is reported, not a RecursionError.
    """
    problems: list[tuple[str, str]] = []
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack and len(problems) < 50:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            problems.append((path, f"nested deeper than {MAX_DEPTH} levels"))
            continue
        if isinstance(value, str):
            problem = _string_problem(value)
            if problem:
                problems.append((path, f"text {problem}"))
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int | float):
            if not is_bounded_number(value):
                problems.append((path, "numbers must be finite, between -1e15 and 1e15"))
        elif isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    problems.append((path, "object keys must be strings"))
                    continue
                problem = _string_problem(key)
                if problem:
                    problems.append((path, f"a key {problem}"))
                    continue
                stack.append((item, f"{path}.{key}" if path else key, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))
        else:
            problems.append((path, f"not a JSON value ({type(value).__name__})"))
    return sorted(problems)
