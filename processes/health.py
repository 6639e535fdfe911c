"""``GET /healthz``: is this installation doing its work? For load balancers and monitoring.

No authentication and nothing secret in the body (no host names, ids or errors' text): 200 when
the database answers, every running worker supervisor's heartbeat is fresh (or late only because
every worker is busy with a step) and the oldest due timer is not older than
``FLOWDESK_HEALTH_TIMER_LAG`` (the timer sweep runs); 503 with the reasons otherwise.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from processes.models import ClusterHeartbeat, TaskInstance

logger = logging.getLogger(__name__)


@never_cache
@require_GET
def healthz(request):
    reasons, details = check()
    return _answer(reasons, details)


def check(now=None) -> tuple[list[str], dict]:
    """(reasons it is unhealthy, details without secrets): what ``/healthz`` answers and what
    ``manage.py watchdog`` alerts on. No reason: healthy."""
    try:
        rows = list(
            ClusterHeartbeat.objects.exclude(state=ClusterHeartbeat.State.STOPPED).values(
                "state", "returned_at", "checked_at", "tree_started_at", "stalled_since"
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

    now = now or timezone.now()
    stall = settings.FLOWDESK_STALL_SECONDS
    reasons: list[str] = []
    ages = []
    if not rows:
        reasons.append("no worker supervisor (manage.py workers) is running")
    for row in rows:
        silent = (now - row["checked_at"]).total_seconds()
        beat = row["returned_at"] or row["tree_started_at"] or row["checked_at"]
        age = (now - beat).total_seconds()
        ages.append(round(age, 1))
        if silent > stall + settings.FLOWDESK_HEARTBEAT_SECONDS:
            reasons.append(f"a worker supervisor has been silent for {silent:.0f}s")
        elif row["state"] == ClusterHeartbeat.State.STALLED:
            since = (now - (row["stalled_since"] or beat)).total_seconds()
            reasons.append(f"workers stalled for {since:.0f}s (the supervisor is restarting them)")
        elif age > stall and row["state"] != ClusterHeartbeat.State.BUSY:
            reasons.append(f"worker heartbeat is {age:.0f}s old")
    timer_lag = (now - oldest_due).total_seconds() if oldest_due else 0.0
    if timer_lag > settings.FLOWDESK_HEALTH_TIMER_LAG:
        reasons.append(
            f"the oldest due timer is {timer_lag:.0f}s late (is the timer sweep running?)"
        )
    return reasons, {
        "database": "ok",
        "workers": {
            "supervisors": len(rows),
            "states": sorted(row["state"] for row in rows),
            "heartbeat_age_seconds": ages,
        },
        "timers": {"oldest_due_seconds": round(max(0.0, timer_lag), 1)},
    }


def _answer(reasons: list[str], details: dict) -> JsonResponse:
    body = {"status": "unhealthy" if reasons else "ok", "reasons": reasons, **details}
    return JsonResponse(body, status=503 if reasons else 200)
