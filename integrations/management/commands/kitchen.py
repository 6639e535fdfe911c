"""``manage.py kitchen [--base-url URL] [--user kitchen] [--once]``: the simulated pizza kitchen
and courier service (``integrations.simulators.kitchen``), run by ``manage.py demo --serve``."""

import contextlib
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token

from integrations.simulators import kitchen


class Command(BaseCommand):
    help = "Work the pizza orders' queues with the seed's TaskCompleted events, as the kitchen."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default=None, help="default: FLOWDESK_BASE_URL")
        parser.add_argument("--user", default="kitchen", help="the API user it calls as")
        parser.add_argument("--once", action="store_true", help="one round, then stop")
        parser.add_argument("--interval", type=float, default=2.0)

    def handle(self, *args, base_url=None, user="kitchen", once=False, interval=2.0, **options):
        token = Token.objects.filter(user__username=user).values_list("key", flat=True).first()
        if token is None:
            raise CommandError(f"no API token for {user!r}: manage.py demo creates the kitchen")
        base_url = (base_url or settings.FLOWDESK_BASE_URL).rstrip("/")
        stop = threading.Event()
        if once:
            stop.set()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            kitchen.run(base_url, token, stop, interval=interval, out=self.stdout)
