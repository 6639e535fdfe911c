"""The SMS seam: console, locmem, file and Twilio backends, chosen by FLOWDESK_SMS_BACKEND."""

import io
import json

import pytest
from twilio.http.response import Response as TwilioResponse

from integrations import sms
from integrations.sms.backends import console, file, locmem, twilio
from integrations.sms.backends.base import SmsError


def test_the_backend_comes_from_settings_at_call_time(settings):
    settings.FLOWDESK_SMS_BACKEND = "integrations.sms.backends.locmem.SmsBackend"
    locmem.outbox.clear()

    message_id = sms.send_sms("+33612345678", "hello")

    assert locmem.outbox == [locmem.Sms(to="+33612345678", body="hello", id=message_id)]


def test_an_unknown_backend_is_a_clear_error(settings):
    settings.FLOWDESK_SMS_BACKEND = "integrations.sms.backends.nope.SmsBackend"

    with pytest.raises(SmsError, match="cannot be imported"):
        sms.send_sms("+33612345678", "hello")


def test_console_backend_prints_the_message():
    stream = io.StringIO()

    console.SmsBackend(stream=stream).send("+33612345678", "task bonus failed")

    assert "SMS to +33612345678" in stream.getvalue()
    assert "task bonus failed" in stream.getvalue()


def test_file_backend_appends_json_lines(tmp_path, settings):
    settings.FLOWDESK_SMS_FILE_PATH = str(tmp_path / "sub" / "sms.jsonl")

    file.SmsBackend().send("+33612345678", "one")
    file.SmsBackend().send("+33698765432", "two")

    messages = file.read_messages()
    assert [(m["to"], m["body"]) for m in messages] == [
        ("+33612345678", "one"),
        ("+33698765432", "two"),
    ]


def test_file_backend_reports_an_unwritable_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")

    with pytest.raises(SmsError, match="cannot write SMS file"):
        file.SmsBackend(path=str(blocker / "sms.jsonl")).send("+33612345678", "x")


class FakeTwilioHttp:
    """Stands in for Twilio's HTTP client (no network): records requests, returns a response."""

    def __init__(self, status=201, body=None):
        self.status, self.body, self.requests = status, body, []
        self.last_request = self.last_response = None

    def request(self, method, url, params=None, data=None, headers=None, auth=None, **kwargs):
        self.requests.append({"method": method, "url": url, "data": data, "auth": auth})
        body = self.body or {
            "sid": "SM123",
            "status": "queued",
            "to": data["To"],
            "body": data["Body"],
        }
        return TwilioResponse(self.status, json.dumps(body))


@pytest.fixture
def twilio_settings(settings):
    settings.TWILIO_ACCOUNT_SID = "AC" + "0" * 32
    settings.TWILIO_AUTH_TOKEN = "token"
    settings.TWILIO_FROM_NUMBER = "+15005550006"
    settings.TWILIO_MESSAGING_SERVICE_SID = ""
    return settings


def test_twilio_backend_sends_through_the_sdk(twilio_settings):
    http = FakeTwilioHttp()

    sid = twilio.SmsBackend(http_client=http).send("+33612345678", "incident")

    assert sid == "SM123"
    (request,) = http.requests
    assert request["method"] == "POST" and request["url"].endswith("/Messages.json")
    assert request["data"] == {"To": "+33612345678", "Body": "incident", "From": "+15005550006"}
    assert request["auth"] == (twilio_settings.TWILIO_ACCOUNT_SID, "token")


def test_twilio_refusal_is_an_sms_error_with_its_message(twilio_settings):
    http = FakeTwilioHttp(status=400, body={"code": 21211, "message": "Invalid 'To' Phone Number"})

    with pytest.raises(
        SmsError, match="Twilio refused the SMS \\(400, code 21211\\): .*Invalid 'To'"
    ):
        twilio.SmsBackend(http_client=http).send("+33612345678", "incident")


def test_twilio_without_configuration_is_a_clear_error(settings):
    settings.TWILIO_ACCOUNT_SID = ""
    settings.TWILIO_FROM_NUMBER = "+15005550006"

    with pytest.raises(SmsError, match="set TWILIO_ACCOUNT_SID"):
        twilio.SmsBackend().send("+33612345678", "incident")
