"""Request input the database cannot hold, refused in one layer before any view runs.

- Integers in URLs are bounded to what an id column holds (INTEGER: 32 bits on PostgreSQL, whose
  bigger sibling BIGINT is what SQLite's integers are): `/investors/99999999999999999999` is a 404
  (no such row) rather than an OverflowError on SQLite or an out-of-range error on PostgreSQL.
- Page numbers are clamped and filter ids checked (`page_arg`, `id_arg`) by the views that read them.
- A NUL character in a query argument, form field or JSON body is refused with 400: PostgreSQL text
  cannot hold it. The signed events API refuses it per field itself (its contract says how).
"""

from __future__ import annotations

import builtins
from typing import Any

from flask import Flask, jsonify, render_template, request
from flask_babel import gettext as _
from werkzeug.routing import IntegerConverter

from growth.errors import DomainError

ID_MAX = 2**31 - 1  # every id column is INTEGER; a bigger number cannot name a row (nor be compared on PostgreSQL)
MAX_PAGE = 100_000  # far past any real list; keeps OFFSET within every database's range
NUL = "\x00"
# Endpoints that check NUL themselves (the signed events API: per event, with the spec's error paths).
_CHECK_THEMSELVES = frozenset({"events_api.receive_events"})


def _at_most(limit: int) -> str:
    """Return a regular expression matching exactly the decimal numbers 0..limit (leading zeros allowed)."""
    digits = str(limit)
    options = [f"0*[0-9]{{1,{len(digits) - 1}}}"] if len(digits) > 1 else []
    for i, d in enumerate(digits):
        if d != "0":
            rest = len(digits) - i - 1
            options.append(f"0*{digits[:i]}[0-{int(d) - 1}]" + (f"[0-9]{{{rest}}}" if rest else ""))
    options.append(f"0*{digits}")
    return "(?:" + "|".join(options) + ")"


class BoundedIntegerConverter(IntegerConverter):
    """The `int` URL converter limited to what an id column holds; a larger id matches no route (404).

    The bound is in the converter's regular expression, not only in its conversion: a path that two rules
    share with different methods (GET and PUT of one resource) then answers a too-big id 404, not 405.
    """

    def __init__(self, map: Any, fixed_digits: int = 0, min: int | None = None,  # werkzeug's argument names
                 max: int | None = None, signed: bool = False) -> None:
        limit = ID_MAX if max is None else builtins.min(max, ID_MAX)
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=limit, signed=signed)
        if not signed and not fixed_digits:
            self.regex = _at_most(limit)


def page_arg(name: str = "page") -> int:
    """Return a page number from the query string: 1 when missing or invalid, at most MAX_PAGE."""
    value = request.args.get(name, 1, type=int) or 1
    return min(max(value, 1), MAX_PAGE)


def id_arg(name: str) -> int | None:
    """Return an id filter from the query string, None when empty; 400 when not an id a row could have."""
    text = request.args.get(name, "").strip()
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or int(text) > ID_MAX:
        raise DomainError(_("筛选条件 %(name)s 的值无效。", name=name), field=name)
    return int(text)


def form_id(name: str) -> int | None:
    """Return an id posted in a form field; None when empty or not an id a row could have (the form then says so)."""
    text = request.form.get(name, "").strip()
    if not text.isascii() or not text.isdigit() or int(text) > ID_MAX:
        return None
    return int(text)


def _has_nul(value: object) -> bool:
    """Tell whether a parsed JSON value holds a NUL in any string or key (iterative: bodies can nest deep)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _nul_in_request() -> bool:
    if NUL in request.path:
        return True
    for key, value in request.args.items(multi=True):
        if NUL in key or NUL in value:
            return True
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return False
    if request.is_json:
        try:
            return _has_nul(request.get_json(silent=True))
        except RecursionError:  # nested too deep for Python's parser: not input anything here accepts
            return True
    for key, value in request.form.items(multi=True):
        if NUL in key or NUL in value:
            return True
    return any(NUL in (upload.filename or "") for upload in request.files.values())


def _refuse_nul():  # type: ignore[no-untyped-def]
    if request.endpoint in _CHECK_THEMSELVES or not _nul_in_request():
        return None
    if request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json":
        return jsonify({"error": "input must not contain the NUL character (\\u0000)"}), 400
    message = _("输入中含有不允许的空字符（NUL），请删除后重试。")
    return render_template("errors/error.html", code=400, message=message), 400


def init_app(app: Flask) -> None:
    """Bound the `int` URL converter and refuse NUL characters; call before registering blueprints."""
    app.url_map.converters["int"] = BoundedIntegerConverter
    app.before_request_funcs.setdefault(None, []).insert(0, _refuse_nul)
