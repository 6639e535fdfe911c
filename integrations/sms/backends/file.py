"""Append every SMS as one JSON line to ``FLOWDESK_SMS_FILE_PATH`` (readable by other processes)."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from integrations.sms.backends.base import BaseSmsBackend, SmsError


class SmsBackend(BaseSmsBackend):
    def __init__(self, path: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.path = Path(path or settings.FLOWDESK_SMS_FILE_PATH)

    def send(self, to: str, body: str) -> str:
        message_id = self.new_id()
        line = json.dumps(
            {"id": message_id, "to": to, "body": body, "at": timezone.now().isoformat()}
        )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)  # several workers may append at once
                fh.write(line + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise SmsError(f"cannot write SMS file {self.path}: {exc}") from None
        return message_id


def read_messages(path: str | os.PathLike | None = None) -> list[dict]:
    """The SMS written so far (tests and the demo read them back)."""
    path = Path(path or settings.FLOWDESK_SMS_FILE_PATH)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
