"""The simulators' HTTP endpoints (JSON in, JSON out), with faults and idempotency keys.

A request carrying an ``Idempotency-Key`` that was answered before gets the stored answer again
(header ``Idempotent-Replayed: true``) and has no second effect; the same key with another body
is refused with 422. Failed answers (faults) are not stored, so a retry with the key can succeed.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from functools import wraps

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import Http404, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from integrations.models import (
    SimulatorCall,
    SimulatorNotice,
    SimulatorPayout,
    SimulatorResponse,
)
from integrations.simulators import directory, faults

PERIOD_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])\Z")


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def simulated(system: str, endpoint: str) -> Callable:
    """Wrap a handler ``(data) -> (status, body)``: faults, auth, JSON, idempotency, call log."""

    def decorator(handler):
        @csrf_exempt
        @require_http_methods(["POST"])
        @wraps(handler)
        def view(request):
            if not settings.FLOWDESK_SIMULATORS:
                raise Http404("simulators are off")
            started = timezone.now()
            key = request.headers.get("Idempotency-Key", "")[:200]
            response = _answer(request, system, endpoint, handler, key)
            SimulatorCall.objects.create(
                system=system,
                endpoint=endpoint,
                idempotency_key=key,
                status_code=response.status_code,
                replayed=response.headers.get("Idempotent-Replayed") == "true",
                started_at=started,
                finished_at=timezone.now(),
            )
            return response

        return view

    return decorator


def _answer(request, system, endpoint, handler, key) -> JsonResponse:
    fault = faults.current(system)
    if fault.latency_ms:
        time.sleep(fault.latency_ms / 1000)
    if fault.down:
        return _error(503, f"the {system} system is down (simulated)")
    if fault.error_rate and random.random() < fault.error_rate:
        return _error(500, f"the {system} system had an internal error (simulated)")
    token = getattr(settings, f"FLOWDESK_{system.upper()}_TOKEN", "")
    if token and request.headers.get("Authorization") != f"Bearer {token}":
        return _error(401, "missing or wrong credentials")
    try:
        data = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return _error(400, "the body is not valid JSON")
    if not isinstance(data, dict):
        return _error(400, "the body must be a JSON object")
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    if key:
        stored = _stored(system, endpoint, key)
        if stored is not None:
            return _replay(stored, digest)
    try:
        with transaction.atomic():
            status, body = handler(data)
            if key and status < 300:
                SimulatorResponse.objects.create(
                    system=system,
                    endpoint=endpoint,
                    idempotency_key=key,
                    request_hash=digest,
                    status_code=status,
                    body=body,
                )
    except BadRequest as exc:
        return _error(exc.status, str(exc))
    except IntegrityError:
        # The same key answered meanwhile (a concurrent retry): its answer wins, ours rolled back.
        stored = _stored(system, endpoint, key) if key else None
        if stored is None:
            raise
        return _replay(stored, digest)
    return JsonResponse(body, status=status)


def _stored(system, endpoint, key):
    return SimulatorResponse.objects.filter(
        system=system, endpoint=endpoint, idempotency_key=key
    ).first()


def _replay(stored: SimulatorResponse, digest: str) -> JsonResponse:
    if stored.request_hash != digest:
        return _error(422, "this Idempotency-Key was used with a different request body")
    response = JsonResponse(stored.body, status=stored.status_code)
    response["Idempotent-Replayed"] = "true"
    return response


def _employee_and_period(data: dict) -> tuple[directory.Employee, str]:
    period = data.get("period")
    if not isinstance(period, str) or not PERIOD_RE.match(period):
        raise BadRequest("period must be YYYY-MM")
    employee = directory.find(data.get("employee_id"))
    if employee is None:
        raise BadRequest(f"unknown employee {str(data.get('employee_id'))[:40]!r}", status=404)
    return employee, period


def _amount(data: dict, name: str) -> Decimal:
    try:
        value = Decimal(str(data.get(name)))
    except InvalidOperation:
        raise BadRequest(f"{name} must be a decimal amount") from None
    if not value.is_finite() or value < 0:
        raise BadRequest(f"{name} must be a positive amount")
    return value.quantize(Decimal("0.01"))


# --- accounting -----------------------------------------------------------------------------------


@simulated("accounting", "salary-base")
def salary_base(data: dict):
    employee, period = _employee_and_period(data)
    return 200, {
        "employee_id": employee.id,
        "employee_name": employee.name,
        "team": employee.team,
        "manager": employee.manager,
        "employee_username": employee.id.lower(),
        "period": period,
        "amount": str(employee.salary_base),
        "currency": "EUR",
    }


@simulated("accounting", "payouts")
def payouts(data: dict):
    employee, period = _employee_and_period(data)
    base, bonus = _amount(data, "salary_base"), _amount(data, "bonus")
    existing = SimulatorPayout.objects.filter(employee_id=employee.id, period=period).first()
    if existing is not None:
        raise BadRequest(
            f"a payout for {employee.id} {period} is already recorded (P{existing.pk:06d})",
            status=409,
        )
    payout = SimulatorPayout.objects.create(
        employee_id=employee.id,
        period=period,
        salary_base=base,
        bonus=bonus,
        total=base + bonus,
        reference=str(data.get("reference") or "")[:200],
    )
    return 201, {
        "payout_id": f"P{payout.pk:06d}",
        "employee_id": employee.id,
        "period": period,
        "salary_base": str(base),
        "bonus": str(bonus),
        "total": str(base + bonus),
    }


@csrf_exempt
@require_GET
def payout_list(request):
    if not settings.FLOWDESK_SIMULATORS:
        raise Http404("simulators are off")
    rows = SimulatorPayout.objects.order_by("-created_at")
    if request.GET.get("employee_id"):
        rows = rows.filter(employee_id=request.GET["employee_id"])
    return JsonResponse(
        {
            "payouts": [
                {
                    "payout_id": f"P{p.pk:06d}",
                    "employee_id": p.employee_id,
                    "period": p.period,
                    "total": str(p.total),
                    "created_at": p.created_at.isoformat(),
                }
                for p in rows[:100]
            ]
        }
    )


# --- bonus ----------------------------------------------------------------------------------------


@simulated("bonus", "compute")
def bonus_compute(data: dict):
    employee, period = _employee_and_period(data)
    if employee.id in directory.NO_BONUS_PLAN:
        raise BadRequest(f"employee {employee.id} has no bonus plan for {period}", status=404)
    amount, rating, rate = employee.bonus(period)
    answer = {
        "employee_id": employee.id,
        "period": period,
        "amount": str(amount),
        "currency": "EUR",
        "rating": rating,
        "rate": str(rate),
    }
    review = data.get("review")
    if isinstance(review, dict):  # a manager sent the bonus back: the recalculation saw why
        answer["review"] = {
            "round": review.get("round"),
            "comment": str(review.get("comment"))[:2000],
        }
    return 200, answer


@simulated("bonus", "rejections")
def bonus_rejection(data: dict):
    employee, period = _employee_and_period(data)
    notice = SimulatorNotice.objects.create(
        employee_id=employee.id,
        period=period,
        decided_by=str(data.get("decided_by") or "")[:150],
        comment=str(data.get("comment") or "")[:2000],
    )
    return 201, {"notice_id": f"N{notice.pk:06d}", "employee_id": employee.id, "period": period}


@require_GET
def status(request):
    """What each simulated system is doing now (faults) — handy in the demo."""
    if not settings.FLOWDESK_SIMULATORS:
        raise Http404("simulators are off")
    return JsonResponse({s: faults.current(s).__dict__ for s in faults.SYSTEMS})
