"""The trends' answers: the API's JSON and the CSV export (``processes.trends`` works out the
figures)."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from processes.trends import Query, Trends


def span(q: Query) -> tuple[str, str]:
    """The first and the last day of ``q``'s periods (ISO dates)."""
    last = timezone.localdate(q.end) - dt.timedelta(days=1)
    return timezone.localdate(q.start).isoformat(), last.isoformat()


def as_dict(figures: Trends) -> dict:
    """The API's answer."""
    q = figures.query
    first, last = span(q)
    return {
        "definition": q.key,
        "by": q.by,
        "from": first,
        "to": last,
        "time_zone": figures.time_zone,
        "behind": figures.behind,
        "periods": [
            {
                "period": p.start.isoformat(),
                "started": p.started,
                "completed": p.completed,
                "cancelled": p.cancelled,
                "lead_seconds": {"p50": p.lead_p50, "p95": p.lead_p95},
                "waiting_for_people": {
                    "tasks": p.people_tasks,
                    "p50": p.people_p50,
                    "p95": p.people_p95,
                    "total_seconds": p.people_total,
                },
                "waiting_for_systems": {
                    "tasks": p.system_tasks,
                    "p50": p.system_p50,
                    "p95": p.system_p95,
                    "total_seconds": p.system_total,
                },
                "late_approvals": {
                    "finished_late": p.late_finished,
                    "open_past_due": p.late_open,
                    "by_role": {
                        role: {"finished_late": f, "open_past_due": o}
                        for role, (f, o) in sorted(p.late_by_role.items())
                    },
                },
            }
            for p in figures.periods
        ],
    }


CSV_COLUMNS = [
    "period",
    "started",
    "completed",
    "cancelled",
    "lead_p50_s",
    "lead_p95_s",
    "people_tasks",
    "people_wait_p50_s",
    "people_wait_p95_s",
    "people_wait_total_s",
    "system_tasks",
    "system_wait_p50_s",
    "system_wait_p95_s",
    "system_wait_total_s",
    "late_finished",
    "late_open",
]


def csv_rows(figures: Trends) -> list[list]:
    """A header, then a row per period; each role adds two columns (``late_finished:<role>``,
    ``late_open:<role>``). Empty cells where there is no figure."""
    roles = figures.roles
    header = CSV_COLUMNS + [
        f"late_{kind}:{role}" for role in roles for kind in ("finished", "open")
    ]
    rows = [header]
    for p in figures.periods:
        values = [
            p.start.isoformat(),
            p.started,
            p.completed,
            p.cancelled,
            p.lead_p50,
            p.lead_p95,
            p.people_tasks,
            p.people_p50,
            p.people_p95,
            p.people_total,
            p.system_tasks,
            p.system_p50,
            p.system_p95,
            p.system_total,
            p.late_finished,
            p.late_open,
        ]
        for role in roles:
            values += p.late_by_role.get(role, [0, 0])
        rows.append(["" if v is None else v for v in values])
    return rows
