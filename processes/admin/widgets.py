"""The small pieces the admin's pages share, each rendered from its template under
``templates/admin/processes/widgets/``: state badges, links, JSON, diagrams; and the one way a
duration is written."""

from __future__ import annotations

import json

from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

STATE_COLOURS = {
    "running": "#0969da",
    "failed": "#cf222e",
    "completed": "#1a7f37",
    "cancelled": "#6e7781",
    "cancelling": "#bf8700",
    "compensating": "#bf8700",
    "compensation_running": "#0969da",
    "compensated": "#6e7781",
    "compensation_failed": "#cf222e",
    "draft": "#9a6700",
    "published": "#1a7f37",
    "retired": "#6e7781",
    "pending": "#8c959f",
    "scheduled": "#bf8700",  # waiting: for a person, a worker or an outside system
    "skipped": "#8c959f",
}
OTHER_COLOUR = "#57606a"


def colour(state: str) -> str:
    return STATE_COLOURS.get(state, OTHER_COLOUR)


def render(name: str, **context) -> SafeString:
    """The widget template ``name`` (placed inline, so without its final newline)."""
    return mark_safe(render_to_string(f"admin/processes/widgets/{name}.html", context).strip())


def badge(state: str, label: str | None = None) -> SafeString:
    return render("badge", state=state, colour=colour(state), label=label or state)


def link(url: str, text, query: str = "") -> SafeString:
    return render("link", url=url, query=query, text=text)


def pretty(data) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


def json_block(data) -> SafeString:
    return render("json", text=pretty(data))


def diagram(draw, what: str) -> SafeString | str:
    """The SVG ``draw()`` makes, framed; a stored spec that no longer parses still shows its
    page, saying so."""
    try:
        svg = draw()
    except Exception as exc:
        return f"cannot draw this {what}: {exc}"
    return render("diagram", svg=mark_safe(svg))


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def duration(seconds: float | None) -> str:
    """A duration as people read it: ms, s, min, h or d."""
    if seconds is None:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
