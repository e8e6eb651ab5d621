"""A fake Tencent Cloud SMS API 3.0 (`SendSms`, 2021-01-11): verifies TC3-HMAC-SHA256, answers like Tencent.

Its signature check is written here from Tencent's documentation, independently of the adapter's.
Queue answers with `queue("Ok", "LimitExceeded.PhoneNumberDailyLimit", ("error", "InternalError.Timeout"), 502)`:
a code goes into `SendStatusSet[0].Code`; `("error", code)` is a request-level `Response.Error`; an int is a
bare HTTP status.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid
from datetime import UTC, datetime

from tests.fakes.sms_base import FakeHttpServer, Received


def expected_authorization(secret_id: str, secret_key: str, host: str, body: bytes, content_type: str,
                           timestamp: int) -> str:
    date = datetime.fromtimestamp(timestamp, UTC).date().isoformat()
    canonical = (f"POST\n/\n\ncontent-type:{content_type}\nhost:{host}\n\ncontent-type;host\n"
                 f"{hashlib.sha256(body).hexdigest()}")
    scope = f"{date}/sms/tc3_request"
    to_sign = f"TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = ("TC3" + secret_key).encode()
    for part in (date, "sms", "tc3_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return f"TC3-HMAC-SHA256 Credential={secret_id}/{scope}, SignedHeaders=content-type;host, Signature={sig}"


class FakeTencentSms(FakeHttpServer):
    """Tencent Cloud SMS `SendSms`; `sent` holds the JSON body of every accepted request."""

    def __init__(self, secret_id: str = "AKID-test", secret_key: str = "test-secret-key") -> None:  # noqa: S107 (test credentials)
        super().__init__()
        self.secret_id = secret_id
        self.secret_key = secret_key

    @property
    def sent(self) -> list[dict]:
        return [r.data for r in self.received if r.accepted]

    def _response(self, status: int = 200, **response: object) -> tuple[int, str, bytes]:
        response["RequestId"] = str(uuid.uuid4())
        return status, "application/json", json.dumps({"Response": response}, ensure_ascii=False).encode()

    def _error(self, code: str, message: str) -> tuple[int, str, bytes]:
        return self._response(Error={"Code": code, "Message": message})

    def answer(self, request: Received) -> tuple[int, str, bytes]:
        h = request.headers
        if h.get("x-tc-action") != "SendSms":
            return self._error("InvalidAction", "The action requested does not exist.")
        if h.get("x-tc-version") != "2021-01-11":
            return self._error("NoSuchVersion", "The requested version does not exist.")
        if not h.get("x-tc-region"):
            return self._error("MissingParameter", "The request is missing a required parameter `Region`.")
        auth = h.get("authorization", "")
        match = re.match(r"TC3-HMAC-SHA256 Credential=([^/]+)/", auth)
        if not match:
            return self._error("AuthFailure.InvalidAuthorization", "Authorization is invalid.")
        if match.group(1) != self.secret_id:
            return self._error("AuthFailure.SecretIdNotFound", "The SecretId is not found.")
        timestamp = int(h.get("x-tc-timestamp", "0"))
        if abs(time.time() - timestamp) > 300:
            return self._error("AuthFailure.SignatureExpire", "Signature expired.")
        wanted = expected_authorization(self.secret_id, self.secret_key, h.get("host", ""), request.body,
                                        h.get("content-type", ""), timestamp)
        if not hmac.compare_digest(auth, wanted):
            return self._error("AuthFailure.SignatureFailure", "The provided credentials could not be validated. "
                                                               "Please check your signature is correct.")
        body = json.loads(request.body)
        request.data = body
        request.accepted = True
        answer = self.next_answer("Ok")
        if isinstance(answer, int):
            return answer, "text/plain", b"Bad Gateway"
        if isinstance(answer, tuple):
            return self._error(answer[1], "request-level error")
        phone = body["PhoneNumberSet"][0]
        return self._response(SendStatusSet=[{
            "SerialNo": f"2640:{len(self.sent)}0000" if answer == "Ok" else "",
            "PhoneNumber": phone, "Fee": 1 if answer == "Ok" else 0, "SessionContext": body.get("SessionContext", ""),
            "Code": answer, "Message": "send success" if answer == "Ok" else f"{phone} refused", "IsoCode": "CN",
        }])
