import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from processes import engine
from processes.events import Actor
from processes.spec import SpecValidationError


class Command(BaseCommand):
    help = "Import a process definition (native JSON or a seed workflow template) and publish it."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", help="JSON definition files")
        parser.add_argument("--key", help="store under this key instead of the one in the file")
        parser.add_argument("--draft", action="store_true", help="store as a draft, don't publish")

    def handle(self, *args, files, key=None, draft=False, **options):
        failed = False
        for name in files:
            path = Path(name)
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise CommandError(f"{name}: no such file") from None
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise CommandError(f"{name}: not valid JSON: {exc}") from None
            try:
                definition, created = engine.definition_import(
                    data=data, key=key, publish=not draft, actor=Actor.system("import_definition")
                )
            except SpecValidationError as exc:
                failed = True
                self.stderr.write(f"{name}: invalid definition:")
                for error in exc.errors:
                    self.stderr.write(f"  {error}")
                continue
            verb = "imported" if created else "unchanged"
            self.stdout.write(
                f"{name}: {verb} {definition.key} v{definition.version} ({definition.status})"
            )
        if failed:
            raise CommandError("some definitions were not imported")
