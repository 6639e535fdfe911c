"""``manage.py timers``: the timer loop alone, beside a bare ``qcluster``.

On PostgreSQL it runs only while it holds the timer lease (``processes.supervisor.leader``), as
the supervisors' timer threads do: one loop across hosts.
"""

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from processes.supervisor import TimerLeader


class Command(BaseCommand):
    help = (
        "Run timers to the second (back-offs, lost enqueues, leases, escalations, deadlines, "
        "compensations) until SIGTERM/SIGINT. ``manage.py workers`` runs the same loop itself; "
        "use this one beside a bare ``qcluster``. One loop across hosts (the timer lease)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tick", type=float, default=None, help="seconds (default: setting)")

    def handle(self, *args, tick=None, **options):
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        self.stdout.write("timer loop running")
        self.stdout.flush()
        leader = TimerLeader(
            settings.FLOWDESK_SUPERVISOR_ID, seconds=settings.FLOWDESK_TIMER_LEASE, tick=tick
        )
        leader.run(stop)
        self.stdout.write("timer loop stopped")
