"""``GET /healthz``: is this installation doing its work? For load balancers and monitoring.

No authentication and nothing secret in the body (no host names, ids or errors' text): 200 when
the database answers, at least one live worker supervisor serves each queue (its heartbeat is
fresh, or late only because every worker is busy with a step) and the oldest due timer is not
older than ``FLOWDESK_HEALTH_TIMER_LAG`` (the timer loop runs); 503 with the reasons otherwise.

A fleet: each supervisor's row lives by being written (every heartbeat). A supervisor that stops
cleanly deletes its row; one silent for longer than its stall + heartbeat is *gone* (its host
vanished) — a reason only when no other supervisor serves its queue — and after
``FLOWDESK_SUPERVISOR_EXPIRY`` it is forgotten, so a fleet that lost a host for good is healthy
again. ``manage.py watchdog`` asks for the same reasons with the hosts named (its SMS).
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import DatabaseError
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from processes.models import ClusterHeartbeat, TaskInstance

logger = logging.getLogger(__name__)

GONE = "gone"  # a supervisor's condition beside its states: silent, its host vanished


@never_cache
@require_GET
def healthz(request):
    reasons, details = check()
    return _answer(reasons, details)


def check(now=None, *, hosts: bool = False) -> tuple[list[str], dict]:
    """(reasons it is unhealthy, details without secrets): what ``/healthz`` answers and what
    ``manage.py watchdog`` alerts on. No reason: healthy. ``hosts``: the reasons name the
    supervisor and its queue (for the on-call SMS, never for the anonymous ``/healthz``)."""
    now = now or timezone.now()
    try:
        expired = now - dt.timedelta(seconds=settings.FLOWDESK_SUPERVISOR_EXPIRY)
        rows = list(
            ClusterHeartbeat.objects.exclude(state=ClusterHeartbeat.State.STOPPED)
            .filter(checked_at__gte=expired)
            .order_by("cluster", "supervisor")
            .values(
                "supervisor",
                "cluster",
                "state",
                "returned_at",
                "checked_at",
                "tree_started_at",
                "stalled_since",
            )
        )
        oldest_due = (
            TaskInstance.objects.filter(wake_at__isnull=False)
            .order_by("wake_at")
            .values_list("wake_at", flat=True)
            .first()
        )
    except DatabaseError:
        logger.exception("healthz: the database does not answer")
        return ["the database does not answer"], {"database": "unavailable"}

    reasons: list[str] = []
    if not rows:
        reasons.append("no worker supervisor (manage.py workers) is running")
    conditions = [_condition(row, now, hosts=hosts) for row in rows]
    for queue in sorted({row["cluster"] for row in rows}):
        mine = [c for row, c in zip(rows, conditions, strict=True) if row["cluster"] == queue]
        if not any(problem is None for _, _, problem in mine):  # nobody serves this queue
            reasons.extend(problem for _, _, problem in mine)
    timer_lag = (now - oldest_due).total_seconds() if oldest_due else 0.0
    if timer_lag > settings.FLOWDESK_HEALTH_TIMER_LAG:
        reasons.append(
            f"the oldest due timer is {timer_lag:.0f}s late (is the timer sweep running?)"
        )
    return reasons, {
        "database": "ok",
        "workers": {
            "supervisors": len(rows),
            "states": sorted(state for state, _, _ in conditions),
            "heartbeat_age_seconds": [age for _, age, _ in conditions],
            "queues": len({row["cluster"] for row in rows}),
        },
        "timers": {"oldest_due_seconds": round(max(0.0, timer_lag), 1)},
    }


def _condition(row: dict, now, *, hosts: bool) -> tuple[str, float, str | None]:
    """(state or "gone", heartbeat age in seconds, what is wrong or None: it serves its queue)."""
    stall = settings.FLOWDESK_STALL_SECONDS
    silent = (now - row["checked_at"]).total_seconds()
    beat = row["returned_at"] or row["tree_started_at"] or row["checked_at"]
    age = (now - beat).total_seconds()
    who = f"worker supervisor {row['supervisor']} (queue {row['cluster']})"
    if silent > stall + settings.FLOWDESK_HEARTBEAT_SECONDS:
        name = who if hosts else "a worker supervisor"
        return GONE, round(age, 1), f"{name} is gone (silent for {silent:.0f}s)"
    if row["state"] == ClusterHeartbeat.State.STALLED:
        since = (now - (row["stalled_since"] or beat)).total_seconds()
        on = f" on {who}" if hosts else ""
        return (
            row["state"],
            round(age, 1),
            f"workers stalled for {since:.0f}s{on} (the supervisor is restarting them)",
        )
    if age > stall and row["state"] != ClusterHeartbeat.State.BUSY:
        of = f" of {who}" if hosts else ""
        return row["state"], round(age, 1), f"worker heartbeat{of} is {age:.0f}s old"
    return row["state"], round(age, 1), None


def _answer(reasons: list[str], details: dict) -> JsonResponse:
    body = {"status": "unhealthy" if reasons else "ok", "reasons": reasons, **details}
    return JsonResponse(body, status=503 if reasons else 200)
