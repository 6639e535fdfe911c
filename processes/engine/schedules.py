"""Scheduled starts: a definition's ``schedule`` starts a process at each cron moment, in
``FLOWDESK_TIME_ZONE``, once.

Run by the timer sweep (``timers.timers_sweep``), so by the one timer loop that holds the
lease (``supervisor.leader``). Each occurrence is a ``ScheduledStart`` row, unique per
definition and business key, written in the start's transaction: a second host, a restart or a
repeated sweep finds the row and starts nothing. Occurrences missed while nothing ran (since the
newest row, or since the version was published) follow the entry's ``catch_up``: ``last`` starts
the newest, ``all`` each (at most ``MAX_CATCH_UP``), ``none`` none (the newest is recorded as
``skipped`` unless it is less than ``ON_TIME`` late).
"""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from dataclasses import dataclass

from croniter import croniter
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from processes.engine.start import process_start
from processes.errors import EngineError
from processes.events import Actor
from processes.models import ProcessDefinition, ScheduledStart

logger = logging.getLogger(__name__)

MAX_CATCH_UP = 100
ON_TIME = dt.timedelta(minutes=5)  # catch_up "none": an occurrence this late still starts
ACTOR = Actor.system("schedule")


def _zone():
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def scheduled_definitions() -> list[ProcessDefinition]:
    """The published version of each key whose definition has a ``schedule``."""
    newest: dict[str, ProcessDefinition] = {}
    for d in ProcessDefinition.objects.published().filter(spec__has_key="schedule"):
        if d.key not in newest or d.version > newest[d.key].version:
            newest[d.key] = d
    return [d for d in newest.values() if d.parsed().schedule]


def occurrences(cron: str, after: dt.datetime, until: dt.datetime, limit: int) -> list:
    """The cron moments in (``after``, ``until``], local time; only the newest ``limit``."""
    it = croniter(cron, after.astimezone(_zone()))
    found: list[dt.datetime] = []
    for _ in range(100_000):  # (a minute cron over two months of downtime)
        moment = it.get_next(dt.datetime)
        if moment > until:
            break
        found.append(moment)
        if len(found) > limit:
            del found[0]
    return found


@dataclass
class _Due:
    definition: ProcessDefinition
    index: int
    moment: dt.datetime
    start: bool  # False: recorded as skipped (catch_up)


def _due(definition: ProcessDefinition, now) -> list[_Due]:
    out = []
    for index, entry in enumerate(definition.parsed().schedule):
        last = (
            ScheduledStart.objects.filter(definition_key=definition.key, schedule_index=index)
            .order_by("-due_at")
            .values_list("due_at", flat=True)
            .first()
        )
        since = last or definition.published_at or definition.created_at
        limit = MAX_CATCH_UP if entry.catch_up == "all" else 1
        for moment in occurrences(entry.cron, since, now, limit):
            late = now - moment > ON_TIME
            out.append(_Due(definition, index, moment, not (entry.catch_up == "none" and late)))
    return out


def schedules_run(*, now=None) -> dict:
    """Start every due occurrence of every schedule, once; return how many of each outcome."""
    now = now or timezone.now()
    outcomes: dict[str, int] = {}
    for definition in scheduled_definitions():
        try:
            due = _due(definition, now)
        except Exception:  # one bad definition must not stop the others
            logger.exception("schedule of %s failed", definition.key)
            due = []
        for item in due:
            outcome = _occur(item)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def _occur(item: _Due) -> str:
    entry = item.definition.parsed().schedule[item.index]
    key = entry.key_for(item.moment)
    row = ScheduledStart(
        definition_key=item.definition.key,
        schedule_index=item.index,
        due_at=item.moment,
        business_key=key,
        outcome="started" if item.start else "skipped",
    )
    try:
        with transaction.atomic():  # the row and the start commit together, or neither
            row.save()
            if item.start:
                row.process = process_start(
                    definition_key=item.definition.key,
                    business_key=key,
                    input=entry.input_for(item.moment),
                    actor=ACTOR,
                ).process
                row.save(update_fields=["process"])
    except IntegrityError:
        return "already"  # another host (or an earlier sweep) had it
    except EngineError as exc:  # bad input, a key taken: recorded, not tried again
        logger.error("scheduled start %s %s refused: %s", item.definition.key, key, exc)
        row.pk, row.outcome, row.error, row.process = None, "error", str(exc)[:4000], None
        try:
            row.save()
        except IntegrityError:
            return "already"
        return "error"
    return row.outcome
