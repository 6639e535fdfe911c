from django.core.management.base import BaseCommand

from processes.worker import sweep_timers


class Command(BaseCommand):
    help = "Run the timer sweep once (the django-q2 schedule runs it every minute)."

    def handle(self, *args, **options):
        outcomes = sweep_timers()
        self.stdout.write(f"sweep: {outcomes or 'nothing due'}")
