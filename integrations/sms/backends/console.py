"""Print every SMS to stdout (the demo's default): the message shows in the worker's console."""

from __future__ import annotations

import sys
import threading

from django.utils import timezone

from integrations.sms.backends.base import BaseSmsBackend

_lock = threading.Lock()


class SmsBackend(BaseSmsBackend):
    def __init__(self, stream=None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.stream = stream

    def send(self, to: str, body: str) -> str:
        message_id = self.new_id()
        stream = self.stream or sys.stdout
        with _lock:
            stream.write(
                f"{'-' * 72}\nSMS to {to} at {timezone.now():%Y-%m-%d %H:%M:%S} ({message_id})\n"
                f"{body}\n{'-' * 72}\n"
            )
            stream.flush()
        return message_id
