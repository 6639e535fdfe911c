"""The dashboard's trends section: the figures of ``processes.trends`` laid out as a table and two
server-side SVG charts (``dashboard_trends.html``), so the page needs no JavaScript. A charting
library was weighed (Chart.js draws on a canvas with JavaScript, pygal would be a new dependency):
two small charts of bars and lines are simpler drawn here, like the heat map beside them."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages

from processes import trends, trends_output
from processes.admin import widgets
from processes.errors import InvalidInput

WIDTH, HEIGHT, LEFT, TOP, BOTTOM = 720, 210, 40, 18, 34
CASE_SERIES = (("started", "#0969da"), ("completed", "#1a7f37"), ("cancelled", "#6e7781"))
TIME_SERIES = (
    ("lead_p50", "#1a7f37", "case lead time p50"),
    ("lead_p95", "#82cf94", "case lead time p95"),
    ("people_p50", "#bf8700", "waiting for people p50"),
    ("system_p50", "#8250df", "waiting for systems p50"),
)


def section(model_admin, request, key: str, behind: int) -> dict:
    """The trends of ``key`` for the dashboard's context (the projection caught up by it, with
    ``behind`` ids left); a bad parameter is shown as a message and the defaults used instead."""
    params = {"definition": key, **{n: request.GET.get(n, "") for n in ("by", "from", "to")}}
    try:
        query = trends.parse_query(request.user, params)
    except InvalidInput as error:
        field = next(iter(error.fields or {"": [""]}))
        model_admin.message_user(
            request, f"Trends: {field}: {error.fields[field][0]}", messages.ERROR
        )
        query = trends.parse_query(request.user, {"definition": key, "by": params["by"]})
    figures = trends.build(query, behind=behind)
    first, last = trends_output.span(query)
    export = {"definition": key, "by": query.by, "from": first, "to": last, "format": "csv"}
    return {
        "trends": figures,
        "trend_by": query.by,
        "trend_from": export["from"],
        "trend_to": export["to"],
        "trend_rows": [row(p, figures.roles) for p in figures.periods],
        "trend_roles": figures.roles,
        "trend_cases_chart": bars(figures.periods),
        "trend_times_chart": lines(figures.periods),
        "trend_csv_url": f"/api/stats/trends/?{urlencode(export)}",
    }


def row(p: trends.Period, roles: list[str]) -> dict:
    d = widgets.duration
    return {
        "p": p,
        "lead_p50": d(p.lead_p50),
        "lead_p95": d(p.lead_p95),
        "people_p50": d(p.people_p50),
        "people_p95": d(p.people_p95),
        "people_total": d(p.people_total) if p.people_tasks else "–",
        "system_p50": d(p.system_p50),
        "system_p95": d(p.system_p95),
        "late_roles": [p.late_by_role.get(role, [0, 0]) for role in roles],
    }


def _label(p: trends.Period, first: bool, by: str) -> str:
    if by == "week":
        return f"{p.start.day} {p.start:%b}"
    return f"{p.start:%b %Y}" if first or p.start.month == 1 else f"{p.start:%b}"


def _frame(periods: list[trends.Period]) -> tuple[float, list[dict]]:
    step = (WIDTH - LEFT - 10) / max(len(periods), 1)
    by = "week" if len(periods) > 1 and (periods[1].start - periods[0].start).days == 7 else ""
    every = max(1, round(len(periods) / 12))  # at most about 12 labels
    labels = [
        {"x": LEFT + step * (i + 0.5), "text": _label(p, i == 0, by)}
        for i, p in enumerate(periods)
        if i % every == 0
    ]
    return step, labels


def bars(periods: list[trends.Period]) -> dict:
    """Started, completed and cancelled cases per period, side by side."""
    step, labels = _frame(periods)
    peak = max((getattr(p, n) for p in periods for n, _ in CASE_SERIES), default=0) or 1
    plot = HEIGHT - TOP - BOTTOM
    width = step * 0.8 / len(CASE_SERIES)
    rects = []
    for i, p in enumerate(periods):
        for j, (name, colour) in enumerate(CASE_SERIES):
            n = getattr(p, name)
            h = plot * n / peak
            rects.append(
                {
                    "x": round(LEFT + step * i + step * 0.1 + width * j, 1),
                    "y": round(TOP + plot - h, 1),
                    "w": round(width, 1),
                    "h": round(h, 1),
                    "fill": colour,
                    "title": f"{p.start}: {n} {name}",
                }
            )
    return _chart(labels, rects, [], f"{peak} cases", CASE_SERIES)


def lines(periods: list[trends.Period]) -> dict:
    """Lead time and waits per period, as lines (a period without a figure breaks its line)."""
    step, labels = _frame(periods)
    peak = max((getattr(p, n) or 0 for p in periods for n, _, _ in TIME_SERIES), default=0) or 1.0
    plot = HEIGHT - TOP - BOTTOM
    paths = []
    for name, colour, label in TIME_SERIES:
        points, pieces = [], []
        for i, p in enumerate(periods):
            value = getattr(p, name)
            if value is None:
                pieces.append(points)
                points = []
                continue
            points.append(f"{LEFT + step * (i + 0.5):.1f},{TOP + plot - plot * value / peak:.1f}")
        pieces.append(points)
        d = " ".join("M" + " L".join(ps) for ps in pieces if ps)
        paths.append({"d": d, "stroke": colour, "title": label})
    legend = [(label, colour) for _, colour, label in TIME_SERIES]
    return _chart(labels, [], paths, widgets.duration(peak), legend)


def _chart(labels, rects, paths, peak_label: str, legend) -> dict:
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "top": TOP,
        "base": HEIGHT - BOTTOM,
        "right": WIDTH - 10,
        "label_y": HEIGHT - BOTTOM + 14,
        "labels": labels,
        "rects": rects,
        "paths": paths,
        "peak": peak_label,
        "legend": [
            {"x": LEFT + 170 * i, "y": HEIGHT - 4, "text": text, "colour": colour}
            for i, (text, colour) in enumerate(legend)
        ],
    }
