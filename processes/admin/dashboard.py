"""The dashboard page: one definition's instances by state, where the time goes per task, a heat
map of the hours of the day, open incidents and SLA breaches. The figures come from
``processes.dashboard``; this module only lays them out for ``dashboard.html``."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from processes import authority, dashboard
from processes.admin import trends, widgets
from processes.db.core import parse_id
from processes.models import ProcessDefinition, ProcessState

WINDOWS = (1, 7, 30, 90, 365)
CELL_W, CELL_H, LABEL_W, TOP = 26, 20, 170, 26


def dashboard_page(model_admin, request):
    definitions = ProcessDefinition.objects.all()
    granted = authority.granted_keys(request.user, authority.SEE)
    if granted is not None:
        definitions = definitions.filter(key__in=granted)
    keys = list(definitions.order_by("key").values_list("key", flat=True).distinct())
    preferred = settings.FLOWDESK_DASHBOARD_KEY
    first = preferred if preferred in keys else (keys[0] if keys else None)
    key = request.GET.get("key") or first
    if key is not None and key not in keys:
        model_admin.message_user(request, f"No definition {key!r}.", messages.ERROR)
        key = first
    days = parse_id(request.GET.get("days", "7"))
    if days not in WINDOWS:
        days = 7
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Process dashboard",
        "opts": model_admin.model._meta,
        "keys": keys,
        "key": key,
        "days": days,
        "windows": WINDOWS,
    }
    if key is not None:
        dash = dashboard.build(key, days=days)
        changelist = reverse("admin:processes_processinstance_changelist")
        context.update(
            {
                "dash": dash,
                "states": state_cards(dash, f"{changelist}?definition_key={key}"),
                "state_labels": ProcessState.choices,
                "task_rows": [task_row(f) for f in dash.tasks],
                "heatmap": heatmap(dash),
                "incidents_url": f"{changelist}?definition_key={key}&state__exact=failed",
                "breaches_url": f"{changelist}?definition_key={key}&overdue=yes",
                **trends.section(model_admin, request, key, dash.behind),
            }
        )
    return TemplateResponse(request, "admin/processes/dashboard.html", context)


def state_cards(dash, list_url: str) -> list[dict]:
    total = dash.total or 1
    return [
        {
            "state": state,
            "label": label,
            "n": dash.by_state.get(state, 0),
            "pct": round(100 * dash.by_state.get(state, 0) / total, 1),
            "colour": widgets.colour(state),
            "url": f"{list_url}&state__exact={state}",
        }
        for state, label in ProcessState.choices
    ]


def task_row(f: dashboard.TaskFigures) -> dict:
    human = f.is_human
    return {
        "f": f,
        "lead_p50": widgets.duration(f.lead_p50),
        "lead_p95": widgets.duration(f.lead_p95),
        "run_p50": widgets.duration(f.run_p50),
        "run_p95": widgets.duration(f.run_p95),
        "waiting_p50": widgets.duration(f.waiting_p50) if human else "",
        "waiting_p95": widgets.duration(f.waiting_p95) if human else "",
        "waiting_total": widgets.duration(f.waiting_total) if human and f.completed else "",
    }


def heat_colour(seconds: float, peak: float) -> str:
    """White to deep orange, like a weather map's heat scale."""
    if seconds == 0:
        return "#f6f8fa"
    level = seconds / peak
    return f"rgb(255,{int(255 - 175 * level)},{int(255 - 235 * level)})"


def heatmap(dash: dashboard.Dashboard) -> dict:
    """Tasks x hours of the day, laid out for ``dashboard_heatmap.html``; darker = more time
    spent there (seconds, summed)."""
    width = LABEL_W + 24 * CELL_W + 10
    height = TOP + max(len(dash.tasks), 1) * CELL_H + 24
    peak = dash.heat_max or 1.0
    rows = []
    for i, task in enumerate(dash.tasks):
        y = TOP + i * CELL_H
        cells = [
            {
                "hour": f"{h:02d}",
                "x": LABEL_W + h * CELL_W,
                "seconds": f"{seconds:.3f}",
                "fill": heat_colour(seconds, peak),
                "took": widgets.duration(seconds),
            }
            for h, seconds in enumerate(task.hours)
        ]
        rows.append({"name": task.name, "y": y, "text_y": y + 14, "cells": cells})
    return {
        "width": width,
        "height": height,
        "cell_w": CELL_W,
        "cell_h": CELL_H,
        "label_x": LABEL_W - 6,
        "hours": [(f"{h:02d}", LABEL_W + h * CELL_W + CELL_W / 2) for h in range(24)],
        "hours_y": TOP - 8,
        "rows": rows,
        "legend_x": LABEL_W,
        "legend_y": height - 6,
        "time_zone": timezone.get_current_timezone_name(),
        "darkest": widgets.duration(peak if dash.heat_max else 0),
    }
