"""The interface every SMS backend implements."""

from __future__ import annotations

import uuid


class SmsError(Exception):
    """The SMS could not be sent (the message says why); the outbox retries it later."""


class BaseSmsBackend:
    channel = "sms"

    def __init__(self, **kwargs) -> None:
        self.options = kwargs

    def send(self, to: str, body: str) -> str:
        """Send ``body`` to ``to`` (E.164); return an id for the message or raise SmsError."""
        raise NotImplementedError

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex
