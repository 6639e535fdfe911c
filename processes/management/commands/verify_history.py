from django.core.management.base import BaseCommand, CommandError

from processes.history import differences
from processes.models import ProcessInstance


class Command(BaseCommand):
    help = "Rebuild each instance's state from its events and report any instance that differs."

    def add_arguments(self, parser):
        parser.add_argument("ids", nargs="*", help="only these process ids")

    def handle(self, *args, ids, **options):
        qs = ProcessInstance.objects.select_related("definition").order_by("created_at")
        if ids:
            qs = qs.filter(pk__in=ids)
        checked = bad = 0
        for process in qs.iterator(chunk_size=500):
            checked += 1
            problems = differences(process)
            if problems:
                bad += 1
                self.stdout.write(f"{process.pk} {process}:")
                for problem in problems:
                    self.stdout.write(f"  {problem}")
        self.stdout.write(f"checked {checked} instances, {bad} differ from their history")
        if bad:
            raise CommandError(f"{bad} instances differ from their history")
