import hashlib

from django.core.management.base import BaseCommand, CommandError

from processes import selectors
from processes.models import Attachment


class Command(BaseCommand):
    help = (
        "Check that every attached file is in the attachments storage with the SHA-256 its "
        "history recorded (after a restore: the files came back with the database)."
    )

    def handle(self, *args, **options):
        checked = bad = 0
        for attachment in Attachment.objects.order_by("created_at").iterator(chunk_size=500):
            checked += 1
            problem = _problem(attachment)
            if problem:
                bad += 1
                self.stdout.write(f"{attachment.pk} {attachment.name}: {problem}")
        self.stdout.write(f"checked {checked} files, {bad} missing or changed")
        if bad:
            raise CommandError(f"{bad} files missing or changed")


def _problem(attachment) -> str:
    digest = hashlib.sha256()
    try:
        with selectors.attachment_blob(attachment) as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except (FileNotFoundError, OSError) as exc:
        return f"missing from the storage ({exc.__class__.__name__})"
    if digest.hexdigest() != attachment.sha256:
        return "its bytes differ from the SHA-256 recorded when it was attached"
    return ""
