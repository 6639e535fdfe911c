"""The interface every SMS backend implements."""

from __future__ import annotations

import uuid


class SmsError(Exception):
    """The SMS could not be sent (the message says why); the outbox retries it later."""


class BaseSmsBackend:
    channel = "sms"
    # Seconds one ``send`` takes at the most. The outbox takes an SMS claimed longer ago than
    # this and FLOWDESK_LEASE_MARGIN over (its worker died mid-send), and sends it again.
    timeout = 10.0

    def __init__(self, **kwargs) -> None:
        self.options = kwargs

    def send(self, to: str, body: str) -> str:
        """Send ``body`` to ``to`` (E.164); return an id for the message or raise SmsError."""
        raise NotImplementedError

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex
