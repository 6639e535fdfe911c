"""How a process's history reads to people: one line per thing that happened, naming the actor
the event recorded.

The audit log (``ProcessEvent``, the API's events list, the admin's table) keeps every row; the
lines here are what the inbox and the admin show beside it. Two rules make them tell the truth:

- **who** is always the event's own actor (``actor_words``), never a guess in the text: a branch
  not taken reads "skipped — condition false" and is the system's, an operator's skip names the
  operator and their reason;
- **one failure is one line**: the events one failure writes in its transaction (a deadline
  passing, the task failing, the incident opening) are folded into the line of the first
  (``Line.folded`` lists the others' seq), so a failure never reads twice.

Variable paths a task's deciders may not see (its ``show`` list, ``authority.visible_changes``)
are left out of the lines built for that task.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext

from processes import authority
from processes.events import SKIP_CAUSES, SKIP_CONDITION, SKIP_DEADLINE, SKIP_OPERATOR
from processes.models import ActorType, EventType, ProcessEvent

# A failure's first event, and the events of the same failure that may follow it (same task,
# next seq, same transaction): they are told in its line.
FAILURE_FOLDS = {
    EventType.TASK_TIMED_OUT: (
        EventType.TASK_FAILED,
        EventType.TASK_SKIPPED,
        EventType.PROCESS_FAILED,
    ),
    EventType.TASK_FAILED: (EventType.PROCESS_FAILED,),
    EventType.COMPENSATION_FAILED: (EventType.PROCESS_FAILED,),
}

CONDITION_FALSE = "condition false"


def humanize(name: str) -> str:
    """A variable or task name as words: "approve_bonus" -> "Approve bonus"."""
    text = str(name).replace("_", " ").replace(".", " › ").strip()
    return text[:1].upper() + text[1:]


def actor_words(event) -> str:
    """The actor the event recorded, as a person reads it: a user's name, an API client's name,
    "system" (the engine's rules, timers, sweeps) or "worker"."""
    label = event.actor_label or ""
    if event.actor_type == ActorType.USER:
        return label or gettext("a person")
    if event.actor_type == ActorType.API:
        return f"{label or gettext('a client')} (API)"
    if event.actor_type == ActorType.WORKER:
        return gettext("worker")
    return gettext("system")


def skip_cause(event) -> str:
    """Why ``event`` (a ``task_skipped``) skipped its task; events written before the cause was
    recorded are read from their reason and actor."""
    data = event.data or {}
    cause = data.get("cause")
    if cause in SKIP_CAUSES:
        return cause
    if str(data.get("reason", "")).startswith(CONDITION_FALSE):
        return SKIP_CONDITION
    if event.actor_type in (ActorType.USER, ActorType.API):
        return SKIP_OPERATOR
    return SKIP_DEADLINE


@dataclass(frozen=True)
class Line:
    """One thing that happened: ``event`` (its first event), what it was, who did it."""

    event: Any
    text: str
    who: str
    folded: tuple[int, ...] = ()  # the seq of the later events this line also tells

    @property
    def is_person(self) -> bool:
        return self.event.actor_type in (ActorType.USER, ActorType.API)


def lines(events, *, task_spec=None) -> list[Line]:
    """The history of ``events`` (in seq order) as lines; ``task_spec``: built for the deciders
    of that task (variable paths outside its ``show`` are left out)."""
    result: list[Line] = []
    group: list = []

    def close() -> None:
        if group:
            result.append(_line(group, task_spec))
            group.clear()

    for event in events:
        if group and _folds_into(group, event):
            group.append(event)
            continue
        close()
        group.append(event)
    close()
    return result


def _folds_into(group: list, event) -> bool:
    """``event`` is part of the failure ``group`` started: the same task, the next seq, the same
    transaction, a type that follows that failure and not yet told."""
    head, last = group[0], group[-1]
    follows = FAILURE_FOLDS.get(head.type)
    if not follows or event.type not in follows:
        return False
    if event.task_name != head.task_name or event.seq != last.seq + 1:
        return False
    if getattr(head, "correlation_id", "") != getattr(event, "correlation_id", ""):
        return False
    return event.type not in {e.type for e in group[1:]}


def _line(group: list, task_spec) -> Line:
    head = group[0]
    folded = {e.type: e for e in group[1:]}
    return Line(
        event=head,
        text=describe(head, task_spec=task_spec, folded=folded) + happened(head),
        who=actor_words(head),
        folded=tuple(e.seq for e in group[1:]),
    )


def happened(event) -> str:
    """When an incoming event happened, as its sender said, if it said (``occurred_at``): the
    line's time is when it was recorded."""
    occurred = getattr(event, "occurred_at", None)
    if occurred is None:
        return ""
    return gettext(" — it happened %(when)s") % {"when": _utc(occurred)}


def _moment(text) -> str:
    try:
        return _utc(dt.datetime.fromisoformat(text))
    except (TypeError, ValueError):
        return str(text)


def _utc(moment: dt.datetime) -> str:
    return f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC"


def _incident(folded: dict) -> str:
    return gettext(" — an incident is open") if EventType.PROCESS_FAILED in folded else ""


def _quoted(text) -> str:
    """— “text”, or nothing for no text."""
    text = str(text or "").strip()
    return gettext(" — “%(text)s”") % {"text": text} if text else ""


def _changed_paths(changes: dict, task_spec) -> list[str]:
    if task_spec is not None:
        changes = authority.visible_changes(changes, task_spec)
    return sorted(changes)


def describe(event, *, task_spec=None, folded: dict | None = None) -> str:
    """One short sentence for ``event`` (and the events of the same failure in ``folded``, by
    type). Who did it is not in it: ``actor_words`` says that beside it."""
    data = event.data or {}
    folded = folded or {}
    t = event.type
    task = humanize(event.task_name) if event.task_name else ""
    w = {**{k: v for k, v in data.items() if isinstance(v, str | int)}, "task": task}
    if t == EventType.PROCESS_STARTED:
        w |= {"definition": data.get("definition", ""), "version": data.get("version", "")}
        return gettext("Started %(definition)s v%(version)s") % w
    if t in (EventType.STAGE_STARTED, EventType.STAGE_COMPLETED):
        w["stage"] = data.get("stage", "")
        if t == EventType.STAGE_STARTED:
            return gettext("Stage %(stage)s started") % w
        return gettext("Stage %(stage)s completed") % w
    if t == EventType.TASK_SCHEDULED and data.get("wake_at"):
        return gettext("%(task)s waits until %(when)s") % (w | {"when": _moment(data["wake_at"])})
    if t == EventType.TASK_SCHEDULED and data.get("message"):
        message = {"message": data["message"], "key": data.get("correlation_key")}
        return gettext("%(task)s is waiting for the message %(message)s (%(key)s)") % (w | message)
    if t == EventType.MESSAGE_RECEIVED:
        message = {"message": data.get("message", ""), "key": data.get("correlation_key", "")}
        return gettext("Message %(message)s (%(key)s) received") % message
    if t == EventType.TASK_SCHEDULED:
        waits_for = data.get("assignee") or data.get("role")
        if waits_for:
            return gettext("%(task)s is waiting for %(who)s") % (w | {"who": waits_for})
        return gettext("%(task)s is waiting") % w
    if t == EventType.TASK_COMPLETED:
        result = data.get("result") if isinstance(data.get("result"), dict) else {}
        decision = result.get("decision")
        if "fired_at" in result and "due_at" in result and not decision:
            return gettext("%(task)s: the timer fired") % w
        if decision:
            text = gettext("%(task)s: %(decision)s") % (w | {"decision": humanize(decision)})
        else:
            text = gettext("%(task)s completed") % w
        decided_by = data.get("decided_by")
        if decided_by and decided_by != event.actor_label:  # e.g. recorded by an API client
            text += gettext(" (decided by %(name)s)") % {"name": decided_by}
        return text + _quoted(result.get("comment"))
    if t == EventType.ATTACHMENT_ADDED:
        size = {"name": data.get("name", "?"), "size": data.get("size", 0)}
        return gettext("File attached: %(name)s (%(size)s bytes)") % size
    if t == EventType.TASK_CLAIMED:
        return gettext("%(task)s claimed") % w
    if t == EventType.TASK_RELEASED:
        return gettext("%(task)s released to its role") % w
    if t == EventType.TASK_DELEGATED:
        text = gettext("%(task)s delegated to %(to)s") % (w | {"to": data.get("to", "?")})
        return text + _quoted(data.get("comment"))
    if t == EventType.TASK_SUBSTITUTED:
        w |= {"absent": data.get("absent", "?"), "until": data.get("until", "?")}
        why = gettext("%(absent)s is away until %(until)s") % w
        if data.get("to"):
            return gettext("%(task)s passed to %(to)s on behalf of %(absent)s: %(why)s") % (
                w | {"why": why}
            )
        refused = f" ({data['refused']})" if data.get("refused") else ""
        if data.get("role"):
            return (
                gettext("%(task)s passed to the role %(role)s: %(why)s") % (w | {"why": why})
                + refused
            )
        return gettext("%(task)s waits for %(absent)s: %(why)s") % (w | {"why": why}) + refused
    if t == EventType.TASK_REASSIGNED:
        if data.get("to"):
            text = gettext("%(task)s reassigned to %(to)s") % (w | {"to": data["to"]})
        else:
            role = {"role": data.get("to_role", "?")}
            text = gettext("%(task)s reassigned to the role %(role)s") % (w | role)
        return text + _quoted(data.get("reason"))
    if t == EventType.TASK_ESCALATED:
        if data.get("to_role") and data.get("to_role") != data.get("from_role"):
            w["from_role"] = data.get("from_role")
            return gettext("%(task)s overdue: escalated from %(from_role)s to %(to_role)s") % w
        return gettext("%(task)s overdue") % w
    if t == EventType.TASK_REMINDED:
        return gettext("%(task)s: reminder sent") % w
    if t == EventType.NOTIFICATION_SENT:
        # Who was alerted and how (phone numbers, addresses) belongs in the admin.
        return gettext("Notice sent (%(channel)s)") % (w | {"channel": data.get("channel", "")})
    if t == EventType.NOTIFICATION_FAILED:
        w["channel"] = data.get("channel", "")
        return gettext("A notice (%(channel)s) could not be sent") % w
    if t == EventType.TASK_DUPLICATE:
        w["state"] = data.get("state")
        return gettext("%(task)s: a late answer was ignored (already %(state)s)") % w
    if t == EventType.TASK_SKIPPED:
        cause = skip_cause(event)
        if cause == SKIP_CONDITION:
            return gettext("%(task)s skipped — condition false") % w
        if cause == SKIP_DEADLINE:
            return gettext("%(task)s skipped — its deadline passed") % w
        return gettext("%(task)s skipped") % w + _quoted(data.get("reason"))
    if t == EventType.TASK_ATTEMPT_FAILED:
        return gettext("%(task)s: a try failed; it is retried automatically") % w
    # The error texts (URLs, internal names) are for the operators, who read them in the admin.
    if t == EventType.TASK_FAILED:
        attempts = data.get("attempts") or 0
        if attempts > 1:
            text = gettext("%(task)s failed after %(attempts)s tries") % (
                w | {"attempts": attempts}
            )
        else:
            text = gettext("%(task)s failed") % w
        return text + _incident(folded)
    if t == EventType.TASK_TIMED_OUT:
        text = gettext("%(task)s passed its deadline") % w
        if EventType.TASK_FAILED in folded:
            return text + gettext(" — it failed") + _incident(folded)
        if EventType.TASK_SKIPPED in folded:
            return text + gettext(" — skipped")
        return text + _incident(folded)
    if t == EventType.COMPENSATION_FAILED:
        if task:
            return gettext("Undoing %(task)s failed") % w + _incident(folded)
        return gettext("Undoing a step failed") + _incident(folded)
    if t == EventType.PROCESS_FAILED:
        return (
            gettext("%(task)s: an incident is open") % w if task else gettext("An incident is open")
        )
    if t == EventType.PROCESS_RESUMED:
        return gettext("The incident is resolved")
    if t == EventType.VARIABLES_CHANGED:
        paths = _changed_paths(data.get("changes") or {}, task_spec)
        if not paths:
            return gettext("Variables corrected")
        text = gettext("Variables corrected: %(paths)s") % {
            "paths": ", ".join(map(humanize, paths))
        }
        return text + _quoted(data.get("reason"))
    if t == EventType.VARIABLES_UPDATED:
        changes = {key: {"after": value} for key, value in (data.get("changes") or {}).items()}
        paths = _changed_paths(changes, task_spec)
        if paths:
            return gettext("Variables updated: %(paths)s") % {
                "paths": ", ".join(map(humanize, paths))
            }
        return gettext("Variables updated")
    label = EventType(t).label if t in EventType.values else t
    return f"{label}{': ' + task if task else ''}"


# --- corrections, for whoever decides next ---------------------------------------------------------


@dataclass(frozen=True)
class Change:
    path: str
    before: Any
    after: Any
    had_before: bool = True
    has_after: bool = True


@dataclass(frozen=True)
class Correction:
    """A ``variables_changed`` event as a task's deciders may read it: who, when, why, and the
    changed paths they may see."""

    by: str
    at: Any
    reason: str
    changes: tuple[Change, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict:
        return {
            "by": self.by,
            "at": self.at,
            "reason": self.reason,
            "changes": {
                c.path: {
                    **({"before": c.before} if c.had_before else {}),
                    **({"after": c.after} if c.has_after else {}),
                }
                for c in self.changes
            },
        }


def corrections(events: list[ProcessEvent], task_spec) -> list[Correction]:
    """``variables_changed`` events as the deciders of ``task_spec`` may read them: each with
    only the paths they may see; one that changed nothing they see is left out (its reason might
    name what they may not see)."""
    found = []
    for event in events:
        data = event.data or {}
        visible = authority.visible_changes(data.get("changes") or {}, task_spec)
        if not visible:
            continue
        found.append(
            Correction(
                by=actor_words(event),
                at=event.created_at,
                reason=str(data.get("reason") or ""),
                changes=tuple(
                    Change(
                        path,
                        change.get("before"),
                        change.get("after"),
                        had_before="before" in change,
                        has_after="after" in change,
                    )
                    for path, change in sorted(visible.items())
                ),
            )
        )
    return found
