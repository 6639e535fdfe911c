"""``manage.py workers``: run the django-q2 cluster under the worker supervisor.

Use it instead of ``manage.py qcluster`` (systemd unit in docs/operations/workers.md). See
``processes/supervisor/`` for what it watches and when it restarts the cluster.
"""

from django.core.management.base import BaseCommand

from processes.supervisor import Config, Supervisor


class Command(BaseCommand):
    help = (
        "Run qcluster under a supervisor that restarts its whole process tree when the heartbeat "
        "stops coming back or qcluster exits, and stops it cleanly on SIGTERM."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--heartbeat",
            type=float,
            help="seconds between two heartbeats (default FLOWDESK_HEARTBEAT_SECONDS)",
        )
        parser.add_argument(
            "--stall",
            type=float,
            help="restart when no heartbeat came back for this long (FLOWDESK_STALL_SECONDS)",
        )
        parser.add_argument(
            "--grace",
            type=float,
            help="seconds qcluster gets on SIGTERM before SIGKILL (FLOWDESK_SHUTDOWN_GRACE)",
        )
        parser.add_argument(
            "--id", dest="supervisor_id", help="supervisor id (FLOWDESK_SUPERVISOR_ID)"
        )

    def handle(self, *args, heartbeat=None, stall=None, grace=None, supervisor_id=None, **options):
        config = Config.from_settings(
            heartbeat=heartbeat, stall=stall, grace=grace, supervisor_id=supervisor_id
        )
        if config.stall <= 2 * config.heartbeat:
            self.stderr.write(
                f"warning: stall ({config.stall}s) should be well above the heartbeat period "
                f"({config.heartbeat}s)"
            )
        Supervisor(config).run()
