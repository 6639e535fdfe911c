import json

from django.core.management.base import BaseCommand, CommandError

from processes import engine
from processes.errors import EngineError
from processes.events import Actor


class Command(BaseCommand):
    help = (
        "Start a process: start_process DEFINITION_KEY BUSINESS_KEY... [--input JSON] "
        "(a business key that starts with - goes after --)."
    )

    def add_arguments(self, parser):
        parser.add_argument("definition")
        parser.add_argument("business_keys", nargs="+")
        parser.add_argument("--input", default="{}", help="JSON object of input variables")

    def handle(self, *args, definition, business_keys, input, **options):
        try:
            variables = json.loads(input)
        except json.JSONDecodeError as exc:
            raise CommandError(f"--input is not valid JSON: {exc}") from None
        for business_key in business_keys:
            try:
                started = engine.process_start(
                    definition_key=definition,
                    business_key=business_key,
                    input=variables,
                    actor=Actor.system("start_process"),
                )
            except EngineError as exc:
                raise CommandError(exc.message) from None
            if started.archived is not None:
                archived = started.archived
                self.stdout.write(
                    f"already ran {archived.process_id} {archived.definition_key}:"
                    f"{archived.business_key} ({archived.state}, archived in "
                    f"{archived.archive_file})"
                )
                continue
            verb = "started" if started.created else "already active"
            self.stdout.write(f"{verb} {started.process.pk} {started.process}")
