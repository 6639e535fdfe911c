"""``manage.py watchdog``: the on-call SMS when the installation stops working, from outside the
worker cluster (cron or a systemd timer, every minute).

It asks what ``/healthz`` answers (``processes.health.check``): the database, the worker
supervisors' heartbeats, the oldest due timer; its reasons name the supervisor (host) and queue. Unhealthy for ``--grace`` seconds (default
``FLOWDESK_WATCHDOG_GRACE``): one SMS to the on-call admins for the outage; healthy again: one SMS
saying so. What it saw is kept in the database (``WatchdogState``), so one outage is one SMS
whichever machine runs it and however often. It also sends the SMS outbox and the digests of
alerts held back by the rate limit, which otherwise ride the (possibly dead) cluster.
Exit status 0 when healthy, 1 when not.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, transaction
from django.utils import timezone

from integrations import alerts
from integrations.models import WatchdogState
from processes import health


class Command(BaseCommand):
    help = (
        "Send the on-call SMS when workers or timers stop (once per outage) and when they recover."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--grace",
            type=float,
            default=None,
            help="seconds unhealthy before the SMS (default FLOWDESK_WATCHDOG_GRACE)",
        )
        parser.add_argument("--name", default="flowdesk", help="the installation watched")

    def handle(self, *args, grace, name, **options):
        grace = settings.FLOWDESK_WATCHDOG_GRACE if grace is None else grace
        now = timezone.now()
        reasons, _ = health.check(now, hosts=True)  # the SMS names the host
        try:
            send = self._observe(name, now, reasons, grace)
        except DatabaseError as exc:
            raise CommandError(
                f"unhealthy: the database does not answer ({type(exc).__name__}); no SMS can "
                "be sent from here: watch /healthz from outside too"
            ) from None
        if send is not None:
            kind, state = send
            if kind == "down":
                alerts.watchdog_down(name=name, since=state.down_since, reasons=reasons)
            else:
                alerts.watchdog_recovered(
                    name=name,
                    since=state.down_since,
                    down_for=(now - state.down_since).total_seconds(),
                )
        alerts.retry_pending(now=now)
        if reasons:
            self.stdout.write("unhealthy: " + "; ".join(reasons))
            raise SystemExit(1)
        self.stdout.write("ok")

    def _observe(self, name, now, reasons, grace):
        """Record what was seen; ("down" | "recovered", state as it was) when an SMS is due."""
        with transaction.atomic():
            WatchdogState.objects.get_or_create(name=name)
            state = WatchdogState.objects.select_for_update().get(name=name)
            before = WatchdogState(
                **{f.attname: getattr(state, f.attname) for f in state._meta.fields}
            )
            send = None
            if reasons:
                state.down_since = state.down_since or now
                if state.alerted_at is None and (now - state.down_since).total_seconds() >= grace:
                    state.alerted_at = now
                    state.outages += 1
                    send = ("down", state)
            elif state.down_since is not None:
                if state.alerted_at is not None:
                    send = ("recovered", before)
                state.down_since = state.alerted_at = None
            state.reasons = reasons
            state.checked_at = now
            state.save()
        return send
