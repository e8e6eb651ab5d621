"""Domain errors and their one mapping to HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask, flash, jsonify, redirect, render_template, request
from flask_babel import LazyString
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from growth.db import mark_rollback


class DomainError(Exception):
    """A refusal the user can act on, with a message for them.

    The message is a Simplified Chinese message id already translated (`gettext`) or to be translated when
    shown (`lazy_gettext`, for code without a request such as pure rules); str() gives the reader's language.
    """

    status = 400

    def __init__(self, message: str | LazyString, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return str(self.message)


class NotFound(DomainError):
    """The thing asked for does not exist."""

    status = 404


class Conflict(DomainError):
    """The change clashes with existing data (a duplicate code, a stale state)."""

    status = 409


class Forbidden(DomainError):
    """The user may not do this."""

    status = 403


@dataclass(frozen=True, slots=True)
class Problem:
    """One broken rule of a submitted document: where (`rewards[0].amount`), a stable code, a message for people."""

    path: str
    code: str
    message: Any  # a lazy or translated string; str() gives the reader's language

    def as_json(self) -> dict[str, str]:
        """Return the problem as the API's error item."""
        return {"path": self.path, "code": self.code, "message": str(self.message)}


class Invalid(DomainError):
    """Valid JSON that breaks rules (422); `problems` lists every one, and the API answers them all under `errors`."""

    status = 422

    def __init__(self, problems: list[Problem], *, message: str | LazyString | None = None) -> None:
        first = problems[0].message if problems else ""
        super().__init__(message if message is not None else first)
        self.problems = list(problems)


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def register_error_handlers(app: Flask) -> None:
    """Map domain errors and HTTP errors to JSON for the API and friendly pages for people."""

    @app.errorhandler(DomainError)
    def _domain(err: DomainError):  # type: ignore[no-untyped-def]
        mark_rollback()
        message = str(err.message)
        if _wants_json():
            body: dict[str, Any] = {"error": message}
            if err.field:
                body["field"] = err.field
            if isinstance(err, Invalid):
                body["errors"] = [p.as_json() for p in err.problems]
            return jsonify(body), err.status
        if request.method == "POST" and err.status in (400, 409):
            flash(message, "danger")
            return redirect(request.referrer or request.path)
        return render_template("errors/error.html", code=err.status, message=message), err.status

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException):  # type: ignore[no-untyped-def]
        mark_rollback()
        code = err.code or 500
        if _wants_json():
            return jsonify({"error": err.description or err.name}), code
        message = None
        if isinstance(err, CSRFError):  # usually a form left open too long or opened before sign-in
            message = _("页面已过期，请刷新后重试。")
        return render_template("errors/error.html", code=code, message=message), code

    @app.errorhandler(Exception)
    def _crash(err: Exception):  # type: ignore[no-untyped-def]
        mark_rollback()
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        if _wants_json():
            return jsonify({"error": "internal error"}), 500
        return render_template("errors/error.html", code=500, message=_("请稍后再试。")), 500
