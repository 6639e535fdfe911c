"""A definition's ``schedule``: starts at cron moments, in ``FLOWDESK_TIME_ZONE``.

``"schedule": [{"cron": "0 6 25 * *", "business_key": "SAL-{date:%Y-%m}", "input": {...},
"catch_up": "last"}]``. The business key is formatted with the occurrence's local date and
time (``{date:...}``, strftime codes): one key per occurrence is what makes each start happen
once (``engine.schedules``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from croniter import croniter

CATCH_UP = ("last", "all", "none")  # missed occurrences: the newest one, each, or none
MAX_SCHEDULES = 20
SAMPLE = dt.datetime(2026, 1, 25, 6, 0)


@dataclass(frozen=True)
class ScheduleSpec:
    cron: str
    business_key: str
    input: dict = field(default_factory=dict, hash=False)
    catch_up: str = "last"

    def key_for(self, moment: dt.datetime) -> str:
        """The business key of the occurrence at ``moment`` (local time)."""
        return self.business_key.format(date=moment)

    def input_for(self, moment: dt.datetime) -> dict:
        """The input, its top-level texts holding ``{date:...}`` formatted like the key
        (``"period": "{date:%Y-%m}"``)."""
        return {
            name: value.format(date=moment)
            if isinstance(value, str) and "{date" in value
            else value
            for name, value in self.input.items()
        }


def _template_problem(template: str) -> str | None:
    try:
        template.format(date=SAMPLE)
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        return f"bad template ({exc}): use {{date:%Y-%m}} and text"
    return None


def business_key_problem(template: str) -> str | None:
    problem = _template_problem(template)
    if problem:
        return problem
    key = template.format(date=SAMPLE)
    if key == template.format(date=SAMPLE + dt.timedelta(days=400)) and "{" not in template:
        return "must hold {date:...}: each occurrence needs its own business key"
    if not key.strip() or len(key) > 200:
        return "must give a business key of 1 to 200 characters"
    return None


def parse_schedule(c, raw: Any) -> tuple[ScheduleSpec, ...]:
    """The ``schedule`` entries; errors are added to the collector ``c``."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_SCHEDULES:
        c.add("schedule", f"must be a list of at most {MAX_SCHEDULES} {{cron, business_key}}")
        return ()
    out = []
    for i, entry in enumerate(raw):
        path = f"schedule[{i}]"
        if not isinstance(entry, dict):
            c.add(path, "must be an object {cron, business_key, input, catch_up}")
            continue
        extra = set(entry) - {"cron", "business_key", "input", "catch_up"}
        if extra:
            c.add(f"{path}.{sorted(extra)[0]}", "unknown field")
        cron, key = entry.get("cron"), entry.get("business_key")
        ok = True
        if not isinstance(cron, str) or not croniter.is_valid(cron) or len(cron.split()) != 5:
            c.add(f"{path}.cron", "must be a cron expression of 5 fields, e.g. '0 6 25 * *'")
            ok = False
        problem = "is required" if not isinstance(key, str) else business_key_problem(key)
        if problem:
            c.add(f"{path}.business_key", problem)
            ok = False
        input_ = entry.get("input", {})
        if not isinstance(input_, dict):
            c.add(f"{path}.input", "must be an object: the started process's input")
            ok = False
        else:
            for name, value in input_.items():
                if isinstance(value, str) and "{date" in value:
                    problem = _template_problem(value)
                    if problem:
                        c.add(f"{path}.input.{name}", problem)
                        ok = False
        catch_up = entry.get("catch_up", "last")
        if catch_up not in CATCH_UP:
            c.add(f"{path}.catch_up", f"must be one of: {', '.join(CATCH_UP)}")
            ok = False
        if ok:
            out.append(ScheduleSpec(cron=cron, business_key=key, input=input_, catch_up=catch_up))
    return tuple(out)


def schedule_json_schema() -> dict:
    return {
        "type": "array",
        "maxItems": MAX_SCHEDULES,
        "description": (
            "Starts at cron moments in `FLOWDESK_TIME_ZONE`, each once: its `business_key` "
            "(formatted with the moment, `SAL-{date:%Y-%m}`) names the occurrence."
        ),
        "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["cron", "business_key"],
            "properties": {
                "cron": {
                    "type": "string",
                    "description": "5 fields: minute hour day-of-month month day-of-week.",
                },
                "business_key": {
                    "type": "string",
                    "pattern": r"\{date[:}]",
                    "description": "The started case's key, `{date:...}` with strftime codes.",
                },
                "input": {
                    "type": "object",
                    "description": (
                        "The started process's input; a top-level text with `{date:...}` is "
                        'formatted like the key (`"period": "{date:%Y-%m}"`).'
                    ),
                },
                "catch_up": {
                    "enum": list(CATCH_UP),
                    "default": "last",
                    "description": (
                        "Occurrences missed while nothing ran: start the newest (`last`), "
                        "each (`all`) or none."
                    ),
                },
            },
        },
    }
