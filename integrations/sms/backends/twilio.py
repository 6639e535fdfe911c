"""Send SMS through Twilio's REST API with its Python SDK.

Configured from the environment: ``TWILIO_ACCOUNT_SID``, ``TWILIO_AUTH_TOKEN`` and either
``TWILIO_FROM_NUMBER`` or ``TWILIO_MESSAGING_SERVICE_SID``.
"""

from __future__ import annotations

from django.conf import settings

from integrations.sms.backends.base import BaseSmsBackend, SmsError


class SmsBackend(BaseSmsBackend):
    def __init__(self, client=None, http_client=None, **kwargs) -> None:
        super().__init__(**kwargs)
        self._client = client
        self._http_client = http_client

    def client(self):
        if self._client is None:
            from twilio.http.http_client import TwilioHttpClient
            from twilio.rest import Client

            sid, token = settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN
            if not sid or not token:
                raise SmsError(
                    "Twilio is not configured: set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"
                )
            self._client = Client(
                sid, token, http_client=self._http_client or TwilioHttpClient(timeout=self.timeout)
            )
        return self._client

    def send(self, to: str, body: str) -> str:
        from twilio.base.exceptions import TwilioException, TwilioRestException

        sender: dict[str, str] = {}
        if settings.TWILIO_MESSAGING_SERVICE_SID:
            sender["messaging_service_sid"] = settings.TWILIO_MESSAGING_SERVICE_SID
        elif settings.TWILIO_FROM_NUMBER:
            sender["from_"] = settings.TWILIO_FROM_NUMBER
        else:
            raise SmsError(
                "Twilio is not configured: set TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID"
            )
        try:
            message = self.client().messages.create(to=to, body=body, **sender)
        except TwilioRestException as exc:
            raise SmsError(
                f"Twilio refused the SMS ({exc.status}, code {exc.code}): {exc.msg}"
            ) from None
        except TwilioException as exc:
            raise SmsError(f"Twilio error: {exc}") from None
        except OSError as exc:  # requests' ConnectionError/Timeout are OSErrors
            raise SmsError(f"Twilio unreachable: {exc}") from None
        return message.sid
