"""Parsing of one field of a definition at a time; every problem goes to the collector with its path."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.utils.dateparse import parse_duration

from processes import steps
from processes.spec.labels import parse_label
from processes.spec.limits import MAX_DURATION, MAX_DURATION_TEXT, is_bounded_number
from processes.spec.types import (
    CONDITION_OPS,
    INITIATOR,
    NAME_RE,
    SUMMARY_FORMATS,
    VAR_PATH_RE,
    Escalation,
    LocalText,
    Retention,
    RetryPolicy,
    SpecError,
    StageSpec,
    SummaryItem,
)

# --- helpers --------------------------------------------------------------------------------------


def slugify_key(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:100] or "process"


def parse_iso_duration(value: Any) -> dt.timedelta | None:
    """Parse an ISO-8601 duration ("PT5M", "P2D") or a number of seconds; None if invalid or
    longer than ``limits.MAX_DURATION`` (so timeouts fit django-q's alarm and due dates the
    date range)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        # past the bound before timedelta() sees it: 1e14 seconds overflows its days
        if not is_bounded_number(value) or not 0 <= value <= MAX_DURATION.total_seconds():
            return None
        parsed = dt.timedelta(seconds=value)
    elif isinstance(value, str) and value.upper().startswith("P") and len(value) <= 40:
        try:
            parsed = parse_duration(value.upper())
        except (ValueError, OverflowError):
            return None
        if parsed is None or parsed < dt.timedelta(0):
            return None
    else:
        return None
    return parsed if parsed <= MAX_DURATION else None


LIMIT = f", at most {MAX_DURATION_TEXT}"


class _Collector:
    def __init__(self) -> None:
        self.errors: list[SpecError] = []

    def add(self, path: str, message: str) -> None:
        self.errors.append(SpecError(path, message))


def _is_number(value: Any) -> bool:
    return is_bounded_number(value)


def _opt_str(c: _Collector, obj: dict, key: str, path: str, *, pattern=None) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        c.add(f"{path}.{key}", "must be a non-empty string of at most 200 characters")
        return None
    if pattern is not None and not pattern.fullmatch(value):
        c.add(f"{path}.{key}", f"invalid value {value!r}")
        return None
    return value


def validate_condition(cond: Any, path: str, c: _Collector) -> None:
    """A condition is data, never code: {"var", "op", "value"} leaves under all/any/not."""
    if not isinstance(cond, dict) or not cond:
        c.add(path, "must be an object such as {'var': 'x', 'op': 'eq', 'value': 1}")
        return
    if len(cond) == 1 and next(iter(cond)) in ("all", "any"):
        key = next(iter(cond))
        items = cond[key]
        if not isinstance(items, list) or not items:
            c.add(f"{path}.{key}", "must be a non-empty list of conditions")
            return
        for i, item in enumerate(items):
            validate_condition(item, f"{path}.{key}[{i}]", c)
        return
    if len(cond) == 1 and "not" in cond:
        validate_condition(cond["not"], f"{path}.not", c)
        return
    unknown = set(cond) - {"var", "op", "value"}
    if unknown:
        c.add(path, f"unknown condition keys: {', '.join(sorted(map(str, unknown)))}")
    var = cond.get("var")
    if not isinstance(var, str) or not VAR_PATH_RE.fullmatch(var):
        c.add(f"{path}.var", "must be a variable path like 'approve_bonus.decision'")
    op = cond.get("op", "eq")
    if op not in CONDITION_OPS:
        c.add(f"{path}.op", f"unknown operator {op!r}; one of {', '.join(CONDITION_OPS)}")
        return
    if op in ("in", "not_in") and not isinstance(cond.get("value"), list):
        c.add(f"{path}.value", f"operator {op!r} needs a list")
    if op not in ("exists", "truthy") and "value" not in cond:
        c.add(f"{path}.value", "is required for this operator")


def _parse_retry(c: _Collector, value: Any, path: str) -> RetryPolicy:
    if value is None:
        return RetryPolicy()
    if _is_number(value) and int(value) == value:
        value = {"max_attempts": int(value)}
    if not isinstance(value, dict):
        c.add(path, "must be an object {max_attempts, backoff, backoff_factor}")
        return RetryPolicy()
    unknown = set(value) - {"max_attempts", "backoff", "backoff_factor", "max_backoff"}
    if unknown:
        c.add(path, f"unknown keys: {', '.join(sorted(map(str, unknown)))}")
    max_attempts = value.get("max_attempts", 3)
    if not (isinstance(max_attempts, int) and not isinstance(max_attempts, bool)) or not (
        1 <= max_attempts <= 100
    ):
        c.add(f"{path}.max_attempts", "must be an integer from 1 to 100")
        max_attempts = 1
    backoff = parse_iso_duration(value.get("backoff", "PT5S"))
    if backoff is None:
        c.add(f"{path}.backoff", "bad duration: use ISO-8601 like 'PT30S' or seconds" + LIMIT)
        backoff = dt.timedelta(seconds=5)
    factor = value.get("backoff_factor", 2.0)
    if not _is_number(factor) or not (1 <= factor <= 10):
        c.add(f"{path}.backoff_factor", "must be a number from 1 to 10")
        factor = 2.0
    max_backoff = parse_iso_duration(value.get("max_backoff", "PT1H"))
    if max_backoff is None:
        c.add(f"{path}.max_backoff", "bad duration: use ISO-8601 like 'PT1H' or seconds" + LIMIT)
        max_backoff = dt.timedelta(hours=1)
    return RetryPolicy(max_attempts, backoff, float(factor), max_backoff)


def _parse_escalation(c: _Collector, value: Any, path: str) -> Escalation | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        c.add(path, "must be an object {after, to, notify}")
        return None
    after = parse_iso_duration(value.get("after"))
    if after is None or after.total_seconds() <= 0:
        c.add(f"{path}.after", "bad duration: use ISO-8601 like 'P2D' or 'PT4H'" + LIMIT)
        return None
    to_role = value.get("to")
    if to_role is not None and (not isinstance(to_role, str) or not NAME_RE.fullmatch(to_role)):
        c.add(f"{path}.to", "must be a role name")
        to_role = None
    notify = value.get("notify", True)
    if not isinstance(notify, bool):
        c.add(f"{path}.notify", "must be true or false")
        notify = True
    return Escalation(after=after, to_role=to_role, notify=notify)


def _known_handlers_default() -> set[str] | None:
    return set(steps.registry.names())


def _path_list(c: _Collector, value: Any, path: str, what: str) -> tuple[str, ...]:
    """A variable path or a list of them."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(
        isinstance(v, str) and VAR_PATH_RE.fullmatch(v) for v in value
    ):
        c.add(path, f"must be a list of {what} like 'salary_base.manager'")
        return ()
    return tuple(dict.fromkeys(value))


def _parse_human_rules(c: _Collector, raw: dict, path: str, ttype: str):
    """``not_by``, ``not_by_var``, ``show`` and ``external_decision``: HUMAN tasks only."""
    present = [k for k in ("not_by", "not_by_var", "show", "external_decision") if k in raw]
    if ttype != "HUMAN":
        for key in present:
            c.add(f"{path}.{key}", "only a HUMAN task has this")
        return (), (), None, False
    not_by: tuple[str, ...] = ()
    if "not_by" in raw:
        value = raw["not_by"]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(
            isinstance(v, str) and VAR_PATH_RE.fullmatch(v) and "." not in v for v in value
        ):
            c.add(f"{path}.not_by", "must be a list of 'initiator' or human task names")
        else:
            not_by = tuple(dict.fromkeys(value))
    not_by_var = _path_list(c, raw.get("not_by_var", []), f"{path}.not_by_var", "variable paths")
    show = None
    if "show" in raw:
        show = _path_list(c, raw["show"], f"{path}.show", "variable paths")
    external = raw.get("external_decision", False)
    if not isinstance(external, bool):
        c.add(f"{path}.external_decision", "must be true or false")
        external = False
    return not_by, not_by_var, show, external


def _check_separation_of_duties(
    c: _Collector, stages: list[StageSpec], task_paths: dict[str, str]
) -> None:
    """``not_by`` names "initiator" or another HUMAN task of this definition."""
    tasks = {t.name: t for s in stages for t in s.tasks}
    for task in tasks.values():
        for i, name in enumerate(task.not_by):
            where = f"{task_paths.get(task.name, '')}.not_by[{i}]"
            if name == INITIATOR:
                continue
            other = tasks.get(name)
            if other is None:
                c.add(where, f"unknown task {name!r}: use 'initiator' or a human task's name")
            elif other.name == task.name:
                c.add(where, "a task can't exclude its own deciders")
            elif other.type != "HUMAN":
                c.add(where, f"task {name!r} is not a human task: nobody decides it")


def _parse_summary(c: _Collector, value: Any, path: str) -> tuple[SummaryItem, ...]:
    """``summary: [{"label", "var", "format", "currency" | "currency_var"}, ...]``."""
    if value is None:
        return ()
    if not isinstance(value, list):
        c.add(path, "must be a list of {label, var, format}")
        return ()
    items: list[SummaryItem] = []
    for i, item in enumerate(value):
        ipath = f"{path}[{i}]"
        if not isinstance(item, dict):
            c.add(ipath, "must be an object {label, var, format}")
            continue
        unknown = set(item) - {"label", "var", "format", "currency", "currency_var"}
        if unknown:
            c.add(ipath, f"unknown key(s): {', '.join(sorted(map(str, unknown)))}")
        label, var = item.get("label"), item.get("var")
        fmt = item.get("format", "text")
        ok = True
        errors_before = len(c.errors)
        label = parse_label(c, label, f"{ipath}.label", required=True)
        if len(c.errors) > errors_before:
            ok = False
        if not isinstance(var, str) or not VAR_PATH_RE.match(var):
            c.add(f"{ipath}.var", "is required: a variable path like 'bonus.amount'")
            ok = False
        if fmt not in SUMMARY_FORMATS:
            c.add(f"{ipath}.format", f"unknown format {fmt!r}; one of {', '.join(SUMMARY_FORMATS)}")
            ok = False
        currency = item.get("currency")
        if currency is not None and not (
            isinstance(currency, str) and re.fullmatch(r"[A-Z]{3}", currency)
        ):
            c.add(f"{ipath}.currency", "must be an ISO 4217 code like 'EUR'")
            ok = False
        currency_var = item.get("currency_var")
        if currency_var is not None and not (
            isinstance(currency_var, str) and VAR_PATH_RE.match(currency_var)
        ):
            c.add(f"{ipath}.currency_var", "must be a variable path like 'bonus.currency'")
            ok = False
        if (currency or currency_var) and fmt != "money":
            c.add(ipath, "currency and currency_var only go with format 'money'")
            ok = False
        if ok:
            label = label if isinstance(label, LocalText) else label.strip()
            items.append(SummaryItem(label, var, fmt, currency, currency_var))
    return tuple(items)


RETENTION_RE = re.compile(r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?\Z")


def parse_retention(value: Any) -> Retention | None:
    """``"P7Y"``, ``"P18M"``, ``"P90D"``, ``"P1Y6M"`` → a Retention; None if not that (retention
    is counted in whole calendar days: no time part)."""
    if not isinstance(value, str) or value in ("P", ""):
        return None
    found = RETENTION_RE.match(value.strip().upper())
    if found is None or not any(found.groups()):
        return None
    years, months, weeks, days = (int(g or 0) for g in found.groups())
    if years > 1000 or months > 12000 or weeks * 7 + days > 366000:
        return None
    return Retention(years=years, months=months, days=weeks * 7 + days, text=value.strip().upper())
