"""A fake Aliyun dysmsapi (2017-05-25) speaking the RPC protocol: verifies signature v1, answers like Aliyun.

Its signature check is written here from Aliyun's documentation, independently of the adapter's.
Queue answers with `queue("isv.MOBILE_NUMBER_ILLEGAL", 503, ...)`: a code is answered with HTTP 200 and
that `Code` (as Aliyun answers business errors); an int is a bare HTTP status with a non-JSON body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import uuid
from urllib.parse import parse_qsl, quote_plus, urlsplit

from tests.fakes.sms_base import FakeHttpServer, Received

MESSAGES = {
    "OK": "OK",
    "isv.BUSINESS_LIMIT_CONTROL": "触发分钟级流控Permits:1",
    "isv.MOBILE_NUMBER_ILLEGAL": "非法手机号",
    "isv.AMOUNT_NOT_ENOUGH": "账户余额不足",
    "isv.BLACK_KEY_CONTROL_LIMIT": "变量中传入疑似违规信息",
    "isv.SMS_TEMPLATE_ILLEGAL": "该账号下找不到对应模板",
    "isp.SYSTEM_ERROR": "系统错误",
}
REQUIRED = ("AccessKeyId", "Action", "Format", "SignatureMethod", "SignatureNonce", "SignatureVersion", "Timestamp",
            "Version", "Signature", "PhoneNumbers", "SignName", "TemplateCode")


def _enc(value: str) -> str:
    # the documented Java recipe: URLEncoder (form encoding), then + → %20, * → %2A, %7E → ~
    return quote_plus(value, safe="*").replace("+", "%20").replace("*", "%2A").replace("%7E", "~")


def expected_signature(params: dict[str, str], method: str, secret: str) -> str:
    query = "&".join(f"{_enc(k)}={_enc(v)}" for k, v in sorted(params.items()) if k != "Signature")
    to_sign = f"{method}&{_enc('/')}&{_enc(query)}"
    return base64.b64encode(hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()).decode()


class FakeAliyunSms(FakeHttpServer):
    """Aliyun SMS `SendSms`; `sent` holds the parameters of every accepted request."""

    def __init__(self, access_key_id: str = "LTAI-test-key", secret: str = "test-secret") -> None:  # noqa: S107 (test credentials)
        super().__init__()
        self.access_key_id = access_key_id
        self.secret = secret
        self.nonces: set[str] = set()

    @property
    def sent(self) -> list[dict[str, str]]:
        return [r.data for r in self.received if r.accepted]

    def _json(self, status: int, **body: str) -> tuple[int, str, bytes]:
        body.setdefault("RequestId", str(uuid.uuid4()).upper())
        return status, "application/json;charset=utf-8", json.dumps(body, ensure_ascii=False).encode()

    def answer(self, request: Received) -> tuple[int, str, bytes]:
        query = urlsplit(request.path).query
        params = dict(parse_qsl(query)) if request.method == "GET" else dict(parse_qsl(request.body.decode()))
        request.data = params
        missing = [name for name in REQUIRED if not params.get(name)]
        if missing:
            return self._json(400, Code=f"MissingParameter.{missing[0]}" if missing[0] != "PhoneNumbers"
                              else "MissingPhoneNumbers", Message=f"{missing[0]} is mandatory for this action.")
        if params["AccessKeyId"] != self.access_key_id:
            return self._json(404, Code="InvalidAccessKeyId.NotFound", Message="Specified access key is not found.")
        if params["SignatureMethod"] != "HMAC-SHA1" or params["SignatureVersion"] != "1.0":
            return self._json(400, Code="InvalidParameter", Message="SignatureMethod or SignatureVersion")
        if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", params["Timestamp"]):
            return self._json(400, Code="InvalidTimeStamp.Format", Message="Specified time stamp is not valid.")
        if params["Signature"] != expected_signature(params, request.method, self.secret):
            return self._json(400, Code="SignatureDoesNotMatch",
                              Message="Specified signature is not matched with our calculation. "
                                      f"server string to sign is:{params['PhoneNumbers']}")
        if params["SignatureNonce"] in self.nonces:
            return self._json(400, Code="SignatureNonceUsed", Message="Specified signature nonce was used already.")
        self.nonces.add(params["SignatureNonce"])
        if params["Action"] != "SendSms":
            return self._json(404, Code="InvalidAction.NotFound", Message="Specified api is not found.")
        if params["Version"] != "2017-05-25" or params["Format"] != "JSON":
            return self._json(400, Code="InvalidVersion", Message="Specified parameter Version is not valid.")
        request.accepted = True
        answer = self.next_answer("OK")
        if isinstance(answer, int):
            return answer, "text/html", b"<html><body>upstream error</body></html>"
        if answer == "OK":
            return self._json(200, Code="OK", Message="OK", BizId=f"{len(self.sent)}00000^0")
        return self._json(200, Code=answer, Message=MESSAGES.get(answer, "error"))
