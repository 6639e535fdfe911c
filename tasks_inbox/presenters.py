"""Turn process data into what a person reads: labelled rows, formatted amounts, event sentences."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.utils.formats import number_format

from processes.models import EventType

AMOUNT_WORDS = re.compile(
    r"(amount|salary|bonus|total|price|cost|pay|sum|budget|fee|base)", re.IGNORECASE
)
MAX_ROWS = 200


def humanize(name: str) -> str:
    text = str(name).replace("_", " ").replace(".", " › ").strip()
    return text[:1].upper() + text[1:]


def format_number(value, *, amount: bool = False) -> str:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    if amount or number != number.to_integral_value():
        return number_format(number.quantize(Decimal("0.01")), 2, force_grouping=True)
    return number_format(int(number), 0, force_grouping=True)


def format_value(key: str, value) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, int | float | Decimal):
        return format_number(value, amount=bool(AMOUNT_WORDS.search(key)))
    if isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            return ", ".join(format_value(key, v) for v in value) or "—"
        return f"{len(value)} items"
    return str(value)


@dataclass(frozen=True)
class Row:
    label: str
    value: str
    depth: int
    is_group: bool = False


def variable_rows(variables, depth: int = 0, prefix: str = "") -> list[Row]:
    """Nested variables as indented rows: groups for objects, formatted values for leaves."""
    rows: list[Row] = []
    if not isinstance(variables, dict):
        return [Row(humanize(prefix or "value"), format_value(prefix, variables), depth)]
    for key, value in variables.items():
        if len(rows) >= MAX_ROWS:
            rows.append(Row("…", "more values not shown", depth))
            break
        if isinstance(value, dict) and value:
            rows.append(Row(humanize(key), "", depth, is_group=True))
            rows.extend(variable_rows(value, depth + 1, key))
        else:
            rows.append(Row(humanize(key), format_value(key, value), depth))
    return rows


def describe_event(event) -> str:
    """One short sentence for the timeline."""
    data = event.data or {}
    t = event.type
    task = humanize(event.task_name) if event.task_name else ""
    if t == EventType.PROCESS_STARTED:
        return f"Started {data.get('definition', '')} v{data.get('version', '')}"
    if t in (EventType.STAGE_STARTED, EventType.STAGE_COMPLETED):
        verb = "started" if t == EventType.STAGE_STARTED else "completed"
        return f"Stage {data.get('stage', '')} {verb}"
    if t == EventType.TASK_SCHEDULED:
        who = data.get("assignee") or data.get("role")
        return f"{task} is waiting" + (f" for {who}" if who else "")
    if t == EventType.TASK_COMPLETED:
        result = data.get("result") if isinstance(data.get("result"), dict) else {}
        decision = result.get("decision")
        text = f"{task} completed"
        if decision:
            text = f"{task}: {humanize(decision)}"
        if data.get("decided_by"):
            text += f" by {data['decided_by']}"
        if result.get("comment"):
            text += f" — “{result['comment']}”"
        return text
    if t == EventType.TASK_CLAIMED:
        return f"{task} claimed"
    if t == EventType.TASK_RELEASED:
        return f"{task} released to its role"
    if t == EventType.TASK_DELEGATED:
        text = f"{task} delegated to {data.get('to', '?')}"
        return text + (f" — “{data['comment']}”" if data.get("comment") else "")
    if t == EventType.TASK_ESCALATED:
        if data.get("to_role") and data.get("to_role") != data.get("from_role"):
            return f"{task} overdue: escalated from {data.get('from_role')} to {data['to_role']}"
        return f"{task} overdue"
    if t == EventType.TASK_REMINDED:
        return f"Reminder sent to {', '.join(data.get('recipients') or []) or 'nobody'}"
    if t == EventType.NOTIFICATION_SENT:
        recipients = ", ".join(data.get("recipients") or []) or "nobody"
        return f"Notice ({data.get('channel', '')}) sent to {recipients}"
    if t == EventType.NOTIFICATION_FAILED:
        return f"Notice ({data.get('channel', '')}) failed: {data.get('error', '')}"
    if t == EventType.TASK_DUPLICATE:
        return f"{task}: late {data.get('event', 'event')} ignored (already {data.get('state')})"
    if t == EventType.TASK_SKIPPED:
        return f"{task} skipped: {data.get('reason', '')}"
    if t in (EventType.TASK_FAILED, EventType.TASK_ATTEMPT_FAILED, EventType.PROCESS_FAILED):
        return f"{EventType(t).label}{': ' + task if task else ''} — {data.get('error', '')}"
    if t == EventType.VARIABLES_UPDATED:
        return "Variables updated: " + ", ".join(map(humanize, data.get("changes") or {}))
    label = EventType(t).label if t in EventType.values else t
    return f"{label}{': ' + task if task else ''}"
