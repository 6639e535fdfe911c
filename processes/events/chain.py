"""The event log proves itself: each event's ``hash`` is a SHA-256 over the previous event's
hash (of the same process) and its own content, so changing, removing or reordering an event
breaks every later link. ``_append`` links each event as it is appended (the process row is
locked: one chain per process, in ``seq`` order); ``first_broken`` finds the first link that
does not hold (``manage.py verify_history``, the archives' proof).

Events written before the chain existed have no hash: a chain starts at the first that has one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

from django.core.serializers.json import DjangoJSONEncoder

_BIG = 1e16  # from here a whole float reads back from JSONB as an integer


def _canonical(value):
    """``value`` as it reads back from the database (JSONB): a whole float past 1e16 as an int."""
    if isinstance(value, float) and value.is_integer() and abs(value) >= _BIG:
        return int(value)
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def _moment(value) -> str | None:
    return value.astimezone(dt.UTC).isoformat() if value is not None else None


def content(event) -> bytes:
    """What an event's hash covers: every column it is written with but its id (not known when
    it is linked) and its hash."""
    fields = {
        "process": str(event.process_id),
        "seq": event.seq,
        "type": str(event.type),
        "task": event.task_name,
        "actor_type": str(event.actor_type),
        "actor_user": event.actor_user_id,
        "actor_label": event.actor_label,
        "created_at": _moment(event.created_at),
        "occurred_at": _moment(event.occurred_at),
        "data": _canonical(event.data or {}),
        "correlation_id": event.correlation_id,
        "caused_by": event.caused_by,
    }
    text = json.dumps(
        fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"), cls=DjangoJSONEncoder
    )
    return text.encode("utf-8", "surrogatepass")


def link(previous: str, event) -> str:
    """The hash of ``event`` after the event whose hash is ``previous``."""
    return hashlib.sha256(previous.encode("ascii") + b"\n" + content(event)).hexdigest()


def first_broken(events) -> str | None:
    """The first link of ``events`` (one process's, in ``seq`` order) that does not hold, in
    words; None when the chain holds."""
    previous = None  # (None: before the chain)
    expected_seq = None
    for event in events:
        if expected_seq is not None and event.seq != expected_seq:
            return f"event #{expected_seq}: missing (the next is #{event.seq})"
        expected_seq = event.seq + 1
        if not event.hash:
            if previous:
                return f"event #{event.seq} ({event.type}): its hash is gone"
            continue
        if event.hash != link(previous or "", event):
            return (
                f"event #{event.seq} ({event.type}): hash chain broken — this event or the one "
                "before it was changed"
            )
        previous = event.hash
    return None
