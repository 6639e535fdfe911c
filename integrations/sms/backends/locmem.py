"""Keep every SMS in ``outbox`` (tests), like Django's locmem email backend."""

from __future__ import annotations

from dataclasses import dataclass

from integrations.sms.backends.base import BaseSmsBackend


@dataclass(frozen=True)
class Sms:
    to: str
    body: str
    id: str


outbox: list[Sms] = []


class SmsBackend(BaseSmsBackend):
    def send(self, to: str, body: str) -> str:
        message_id = self.new_id()
        outbox.append(Sms(to=to, body=body, id=message_id))
        return message_id
