from pathlib import Path

from django.core.management import call_command
from django.core.management.base import BaseCommand

from processes import hooks, projections
from processes.models import ProcessDefinition
from processes.worker import ensure_schedules

DEFINITIONS = Path(__file__).resolve().parents[2] / "definitions"
# Reference definitions shipped with the product: file name -> key.
REFERENCE = {"pizza.json": "pizza", "salary.json": "salary"}


class Command(BaseCommand):
    help = (
        "Create the periodic schedules (timer sweep, projection, the outboxes' sweeps) and import "
        "the reference definitions whose key has no version yet (idempotent; --update imports "
        "the files over what an admin published)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--update",
            action="store_true",
            help="publish the shipped file as a new version when it differs from the newest one",
        )

    def handle(self, *args, update=False, **options):
        schedule = ensure_schedules()
        self.stdout.write(f"schedule {schedule.name}: every {schedule.minutes} min")
        schedule = projections.ensure_schedule()
        self.stdout.write(f"schedule {schedule.name}: every {schedule.minutes} min")
        hooks.within("setup", say=self.stdout.write)  # the adapters' own (the outboxes')
        for filename, key in REFERENCE.items():
            path = DEFINITIONS / filename
            if not path.exists():
                continue
            newest = ProcessDefinition.objects.filter(key=key).order_by("-version").first()
            if newest is not None and not update:
                # An admin may have published their own version: a restart must not undo it.
                self.stdout.write(
                    f"{filename}: kept {key} v{newest.version} ({newest.status}); "
                    "setup_flowdesk --update imports the file again"
                )
                continue
            call_command("import_definition", str(path), key=key, stdout=self.stdout)
