"""The fields of the tasks that wait on the world: a ``TIMER`` task's ``wait`` or ``until``, a
``MESSAGE`` task's ``message``. On other types they are extra fields, kept and passed on like
any other (definitions published before these types existed may carry them)."""

from __future__ import annotations

from typing import Any

from processes.spec.fields import LIMIT, _Collector, parse_iso_duration
from processes.spec.types import NAME_RE, VAR_PATH_RE, MessageSpec

WAIT_FIELDS = {"wait": "TIMER", "until": "TIMER", "message": "MESSAGE"}


def parse_waits(c: _Collector, raw: dict, path: str, ttype: str, handler) -> tuple:
    """(wait, until, message) of the task ``raw`` of type ``ttype``, problems to ``c``."""
    if ttype in ("TIMER", "MESSAGE") and handler:
        c.add(f"{path}.handler", f"a {ttype} task has no handler: it waits")
    if ttype == "TIMER":
        return (*_parse_timer(c, raw, path), None)
    if ttype == "MESSAGE":
        return None, None, _parse_message(c, raw.get("message"), f"{path}.message")
    return None, None, None


def _parse_timer(c: _Collector, raw: dict, path: str):
    wait, until = raw.get("wait"), raw.get("until")
    if (wait is None) == (until is None):
        c.add(path, "a TIMER task needs either 'wait' (a duration) or 'until' (a variable path)")
        return None, None
    if wait is not None:
        parsed = parse_iso_duration(wait)
        if parsed is None or parsed.total_seconds() <= 0:
            c.add(f"{path}.wait", "bad duration: use ISO-8601 like 'PT2H' or seconds" + LIMIT)
            return None, None
        return parsed, None
    if not isinstance(until, str) or not VAR_PATH_RE.fullmatch(until):
        c.add(f"{path}.until", "must be a variable path holding an ISO date-time, like 'pay.at'")
        return None, None
    return None, until


def _parse_message(c: _Collector, value: Any, path: str) -> MessageSpec | None:
    if not isinstance(value, dict):
        c.add(path, "a MESSAGE task needs {name, key}: the message and its correlation key")
        return None
    unknown = set(value) - {"name", "key"}
    if unknown:
        c.add(path, f"unknown key(s): {', '.join(sorted(map(str, unknown)))}")
    name, key = value.get("name"), value.get("key")
    ok = True
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        c.add(f"{path}.name", "must be a message name: letters, digits, '_', ' ', '.', ':', '-'")
        ok = False
    if not isinstance(key, str) or not VAR_PATH_RE.fullmatch(key):
        c.add(f"{path}.key", "must be the variable path of the correlation key, like 'order_id'")
        ok = False
    return MessageSpec(name, key) if ok else None


def is_extra(key: str, ttype: str) -> bool:
    """``key`` of a task of type ``ttype`` is an extra field: one of another type's own."""
    return key in WAIT_FIELDS and WAIT_FIELDS[key] != ttype
