from pathlib import Path

from django.core.management import call_command
from django.core.management.base import BaseCommand

from integrations import events_out
from processes import projections
from processes.worker import ensure_schedules

DEFINITIONS = Path(__file__).resolve().parents[2] / "definitions"
# Reference definitions shipped with the product: file name -> key.
REFERENCE = {"pizza.json": "pizza", "salary.json": "salary"}


class Command(BaseCommand):
    help = "Create the timer-sweep schedule and import the reference definitions (idempotent)."

    def handle(self, *args, **options):
        schedule = ensure_schedules()
        self.stdout.write(f"schedule {schedule.name}: every {schedule.minutes} min")
        schedule = projections.ensure_schedule()
        self.stdout.write(f"schedule {schedule.name}: every {schedule.minutes} min")
        schedule = events_out.ensure_schedule()
        self.stdout.write(f"schedule {schedule.name}: every {schedule.minutes} min")
        for filename, key in REFERENCE.items():
            path = DEFINITIONS / filename
            if path.exists():
                call_command("import_definition", str(path), key=key, stdout=self.stdout)
