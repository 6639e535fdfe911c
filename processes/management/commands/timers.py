import signal
import threading

from django.core.management.base import BaseCommand

from processes.engine import timer_loop


class Command(BaseCommand):
    help = (
        "Run timers to the second (back-offs, lost enqueues, leases, escalations, deadlines, "
        "compensations) until SIGTERM/SIGINT. ``manage.py workers`` runs the same loop itself; "
        "use this one beside a bare ``qcluster``."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tick", type=float, default=None, help="seconds (default: setting)")

    def handle(self, *args, tick=None, **options):
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        self.stdout.write("timer loop running")
        self.stdout.flush()
        timer_loop(stop, tick=tick)
        self.stdout.write("timer loop stopped")
