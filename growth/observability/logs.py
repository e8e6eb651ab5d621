"""Log output: one JSON object a line (GROWTH_LOG_FORMAT=json) or text, always with personal data masked.

Every record passes `MaskFilter` (phones 138****5678, emails, ID numbers, IPv4 addresses and `name=` values,
in the message, its arguments, `extra` fields and exception text) and gets the request id of the web request
it was logged in, if any.
"""

from __future__ import annotations

import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson
from flask import Flask, g, has_request_context
from flask.logging import default_handler

from growth.observability.rules import mask_text, mask_value

# The attributes every LogRecord has: anything else on a record came in through `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "request_id"}
_OURS = "_growth_handler"


class MaskFilter(logging.Filter):
    """Mask personal data in a record, in place, before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message, `extra` fields and exception text with personal data masked."""
        if getattr(record, "_growth_masked", False):
            return True  # a record reaches several handlers: mask once
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep what there is
            message = str(record.msg)
        record.msg, record.args = mask_text(message), None
        for key in [k for k in vars(record) if k not in _STANDARD and not k.startswith("_")]:
            setattr(record, key, mask_value(getattr(record, key), key=key))
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = mask_text("".join(traceback.format_exception(*record.exc_info)).rstrip())
            record.exc_info = None  # formatted (and masked) above; formatters print exc_text
        elif record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
        record._growth_masked = True
        return True


class RequestIdFilter(logging.Filter):
    """Give every record the id of the web request it was logged in (None outside requests)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Set `record.request_id`."""
        if getattr(record, "request_id", None) is None:
            record.request_id = g.get("request_id") if has_request_context() else None
        return True


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object: time, level, logger, message, request_id, then `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one line of JSON."""
        message = record.getMessage()
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": message,
            "request_id": getattr(record, "request_id", None),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in out:
                out[key] = value
        if record.exc_text:
            out["exception"] = record.exc_text
        elif record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = record.stack_info
        return orjson.dumps(out, default=str).decode()


class _StderrHandler(logging.StreamHandler[TextIO]):
    """A stream handler on whatever sys.stderr is when a record comes (tests and servers replace it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def _guard(handler: logging.Handler) -> None:
    for kind in (RequestIdFilter, MaskFilter):
        if not any(isinstance(f, kind) for f in handler.filters):
            handler.addFilter(kind())


def configure_logging(app: Flask) -> None:
    """Install the log output the configuration asks for; mask personal data in every case.

    text (the default): the output stays as it was (Flask's handler, Python's last resort), masked.
    json: one handler on the root logger, at GROWTH_LOG_LEVEL, writing JSON lines to stderr.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(handler)  # a second app in one process (tests) replaces the first one's
    if str(app.config.get("LOG_FORMAT", "text")).lower() != "json":
        _guard(default_handler)
        if logging.lastResort is not None:
            _guard(logging.lastResort)
        return
    handler = _StderrHandler()
    setattr(handler, _OURS, True)
    handler.setFormatter(JsonFormatter())
    _guard(handler)
    root.addHandler(handler)
    root.setLevel(str(app.config.get("LOG_LEVEL", "INFO")).upper())
    # Flask's own handler on the app's logger ("growth") would print every growth.* record a second time.
    logging.getLogger(app.name).removeHandler(default_handler)
