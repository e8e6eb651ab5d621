"""How large a request body each class of route accepts: Flask's MAX_CONTENT_LENGTH, per request.

Every route gets the small default (`MAX_CONTENT_LENGTH`, 1 MiB); a view that takes more declares it
where it is defined with `@max_body(...)`, as it declares its permission. A body over the limit is
refused with 413 before any form or file is parsed (werkzeug refuses to read past it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import Flask, current_app, request

F = TypeVar("F", bound=Callable[..., object])

MiB = 1024 * 1024
DEFAULT_MAX_BODY = 1 * MiB  # forms, JSON, everything not declared otherwise
UPLOAD_MAX_BODY = 4 * MiB  # a CSV import: the file (at most 2 MB) plus the form and multipart framing
ENVELOPE_SLACK = 64 * 1024  # above the events API's own 5 MiB check, so that check answers with its JSON 413


def max_body(limit: int) -> Callable[[F], F]:
    """Declare the largest request body (bytes) a view accepts, instead of the app's default."""

    def mark(view: F) -> F:
        view.max_body = limit  # type: ignore[attr-defined]
        return view

    return mark


def _apply_route_limit() -> None:
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    limit = getattr(view, "max_body", None)
    if limit is not None:
        request.max_content_length = limit


def init_request_size(app: Flask) -> None:
    """Apply each route's declared body limit before anything (CSRF check, form parsing) reads the body."""
    app.config.setdefault("MAX_CONTENT_LENGTH", DEFAULT_MAX_BODY)
    app.before_request_funcs.setdefault(None, []).insert(0, _apply_route_limit)
