"""``manage.py archive_processes``: retention — archive closed processes, then delete them."""

import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from processes import engine
from processes.engine import retention
from processes.events import Actor


class Command(BaseCommand):
    help = (
        "Export completed/cancelled processes older than their definition's retention as JSON "
        "lines (history and verify_history proof included) to the archive storage, read the "
        "export back, then delete them with their events. Run as the tables' owner."
    )

    def add_arguments(self, parser):
        parser.add_argument("--definition", help="only processes of this definition key")
        parser.add_argument("--batch", type=int, default=200, help="processes per file (200)")
        parser.add_argument("--limit", type=int, help="archive at most this many processes")
        parser.add_argument("--now", help="ISO 8601 moment to count retention from (default: now)")
        parser.add_argument(
            "--dry-run", action="store_true", help="only count what is due, write nothing"
        )

    def handle(self, *args, definition, batch, limit, now, dry_run, **options):
        if batch < 1:
            raise CommandError("--batch must be at least 1")
        if limit is not None and limit < 1:
            raise CommandError("--limit must be at least 1")
        if now:
            moment = parse_datetime(now)
            if moment is None:
                raise CommandError(f"--now {now!r} is not an ISO 8601 moment")
            now = moment if timezone.is_aware(moment) else timezone.make_aware(moment, dt.UTC)
        due = retention.due(now=now, definition_key=definition)
        if dry_run:
            counts: dict[str, int] = {}
            for key in due.values_list("definition_key", flat=True):
                counts[key] = counts.get(key, 0) + 1
            for key, count in sorted(counts.items()):
                self.stdout.write(f"{key}: {count} due")
            self.stdout.write(f"{sum(counts.values())} processes due (dry run: nothing written)")
            return
        try:
            report = engine.processes_archive(
                actor=Actor.system("archive_processes"),
                now=now,
                definition_key=definition,
                batch=batch,
                limit=limit,
            )
        except engine.ArchiveError as exc:
            raise CommandError(
                f"archive not verified, nothing of that batch deleted: {exc}"
            ) from None
        except DatabaseError as exc:
            raise CommandError(
                f"the database refused the purge ({str(exc).strip()}): run this command as "
                "the owner of the tables (the role that ran the migrations)"
            ) from None
        for name in report.files:
            self.stdout.write(f"wrote {name}")
        for pk, reason in report.skipped.items():
            self.stdout.write(f"kept {pk}: {reason}")
        deleted = ", ".join(f"{n} {k}" for k, n in report.deleted.items()) or "nothing"
        self.stdout.write(
            f"archived {len(report.archived)} processes in {len(report.files)} files "
            f"({report.bytes} bytes); deleted {deleted}"
        )
