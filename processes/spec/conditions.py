"""Conditions and variables: data, never code. Looked up by dotted path; a missing one is false."""

from __future__ import annotations

import copy
import re
from decimal import Decimal, InvalidOperation
from typing import Any

MISSING = object()


def lookup(variables: dict, path: str) -> Any:
    value: Any = variables
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return MISSING
    return value


def evaluate_condition(cond: Any, variables: dict) -> bool:
    """Evaluate a validated condition against the process variables; a missing variable is false."""
    if cond is None:
        return True
    if "all" in cond and len(cond) == 1:
        return all(evaluate_condition(x, variables) for x in cond["all"])
    if "any" in cond and len(cond) == 1:
        return any(evaluate_condition(x, variables) for x in cond["any"])
    if "not" in cond and len(cond) == 1:
        return not evaluate_condition(cond["not"], variables)
    value = lookup(variables, cond["var"])
    op = cond.get("op", "eq")
    if op == "exists":
        return value is not MISSING
    if value is MISSING:
        return False
    if op == "truthy":
        return bool(value)
    expected = cond.get("value")
    value, expected = _as_numbers(value, expected)
    try:
        if op == "eq":
            return value == expected
        if op == "ne":
            return value != expected
        if op == "in":
            return value in expected
        if op == "not_in":
            return value not in expected
        if op == "gt":
            return value > expected
        if op == "gte":
            return value >= expected
        if op == "lt":
            return value < expected
        if op == "lte":
            return value <= expected
    except TypeError:
        return False
    return False


_DECIMAL_RE = re.compile(r"-?\d{1,16}(\.\d{1,10})?\Z")


def _as_numbers(value: Any, expected: Any) -> tuple[Any, Any]:
    """A declared decimal is stored as text ("409.32"): compared with a number, both are
    compared as decimals (``bonus.amount gt 1000`` means what it says)."""

    def number(x):
        return isinstance(x, int | float) and not isinstance(x, bool)

    def decimal_text(x):
        return isinstance(x, str) and _DECIMAL_RE.match(x) is not None

    if (number(expected) and decimal_text(value)) or (number(value) and decimal_text(expected)):
        try:
            pair = Decimal(str(value)), Decimal(str(expected))
        except InvalidOperation:
            return value, expected
        if all(x.is_finite() for x in pair):
            return pair
    return value, expected


def describe_condition(cond: Any) -> str:
    """A short human label for diagrams and admin pages."""
    if cond is None:
        return ""
    if "all" in cond and len(cond) == 1:
        return " and ".join(describe_condition(x) for x in cond["all"])
    if "any" in cond and len(cond) == 1:
        return " or ".join(describe_condition(x) for x in cond["any"])
    if "not" in cond and len(cond) == 1:
        return f"not ({describe_condition(cond['not'])})"
    symbols = {"eq": "=", "ne": "≠", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤"}
    op = cond.get("op", "eq")
    if op in ("exists", "truthy"):
        return f"{cond['var']} {op}"
    return f"{cond['var']} {symbols.get(op, op)} {cond.get('value')!r}"


def apply_variable_changes(variables: dict, set_paths: dict, unset_paths) -> tuple[dict, dict]:
    """A copy of ``variables`` with ``set_paths`` set and ``unset_paths`` removed, and the diff
    ``{path: {"before": ..., "after": ...}}`` of what really changed (a missing side: absent).

    Returns (variables, None) when a path goes through a value that is not an object.
    """
    result = copy.deepcopy(variables or {})
    diff: dict = {}
    for path, value in [
        *((p, v) for p, v in set_paths.items()),
        *((p, MISSING) for p in unset_paths),
    ]:
        parts = path.split(".")
        target = result
        for part in parts[:-1]:
            nxt = target.get(part, MISSING)
            if nxt is MISSING:
                if value is MISSING:
                    target = None
                    break
                nxt = target[part] = {}
            if not isinstance(nxt, dict):
                return result, None
            target = nxt
        if target is None:
            continue
        before = target.get(parts[-1], MISSING)
        if value is MISSING:
            if before is MISSING:
                continue
            del target[parts[-1]]
        else:
            if before == value and before is not MISSING:
                continue
            target[parts[-1]] = value
        change = {}
        if before is not MISSING:
            change["before"] = before
        if value is not MISSING:
            change["after"] = value
        diff[path] = change
    return result, diff
