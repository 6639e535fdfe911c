"""Faults per simulated system: the env default, overridden by a SimulatorFault row."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from integrations.models import SimulatorFault

SYSTEMS = ("accounting", "bonus")


@dataclass(frozen=True)
class Faults:
    down: bool = False
    latency_ms: int = 0
    error_rate: float = 0.0


def parse_env(text: str) -> dict[str, Faults]:
    """Parse "bonus:down,accounting:latency=50,bonus:error_rate=0.2"; ignore what is unclear."""
    found: dict[str, dict] = {}
    for item in (text or "").split(","):
        system, _, fault = item.strip().partition(":")
        if system not in SYSTEMS or not fault:
            continue
        name, _, value = fault.partition("=")
        values = found.setdefault(system, {})
        try:
            if name == "down":
                values["down"] = value.lower() not in ("0", "false", "no", "off")
            elif name == "latency":
                values["latency_ms"] = max(0, int(value))
            elif name == "error_rate":
                values["error_rate"] = min(1.0, max(0.0, float(value)))
        except ValueError:
            continue
    return {system: Faults(**values) for system, values in found.items()}


def current(system: str) -> Faults:
    row = SimulatorFault.objects.filter(system=system).first()
    if row is not None:
        return Faults(down=row.down, latency_ms=row.latency_ms, error_rate=row.error_rate)
    return parse_env(getattr(settings, "FLOWDESK_SIMULATOR_FAULTS", "")).get(system, Faults())


def set_faults(system: str, **changes):
    """Switch faults on or off for ``system`` (the admin and ``manage.py simulator`` use this)."""
    if system not in SYSTEMS:
        raise ValueError(f"unknown system {system!r}; one of {', '.join(SYSTEMS)}")
    base = current(system)
    row, _ = SimulatorFault.objects.get_or_create(
        system=system,
        defaults={"down": base.down, "latency_ms": base.latency_ms, "error_rate": base.error_rate},
    )
    for name, value in changes.items():
        setattr(row, name, value)
    row.full_clean()
    row.save()
    return row
