from django.core.management.base import BaseCommand, CommandError

from integrations.simulators import faults


class Command(BaseCommand):
    help = "Switch simulator faults: simulator bonus down | up | latency 200 | errors 0.3 | status."

    def add_arguments(self, parser):
        parser.add_argument("system", choices=[*faults.SYSTEMS, "status"])
        parser.add_argument(
            "action",
            nargs="?",
            default="status",
            choices=["down", "up", "latency", "errors", "status"],
        )
        parser.add_argument("value", nargs="?")

    def handle(self, *args, system, action, value, **options):
        if system == "status" or action == "status":
            for name in faults.SYSTEMS if system == "status" else [system]:
                self.stdout.write(f"{name}: {faults.current(name)}")
            return
        try:
            if action == "down":
                row = faults.set_faults(system, down=True)
            elif action == "up":
                row = faults.set_faults(system, down=False, error_rate=0.0, latency_ms=0)
            elif action == "latency":
                row = faults.set_faults(system, latency_ms=int(value))
            else:
                row = faults.set_faults(system, error_rate=float(value))
        except (TypeError, ValueError) as exc:
            raise CommandError(f"{action} needs a number: {exc}") from None
        except Exception as exc:  # ValidationError from full_clean
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"{system}: down={row.down} latency={row.latency_ms}ms error_rate={row.error_rate}"
        )
