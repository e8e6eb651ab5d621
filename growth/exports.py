"""CSV downloads people open in Excel: UTF-8 with a BOM, formula-looking text defused."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable

from flask import Response

_NUMBER = re.compile(r"-?[0-9][0-9,]*(\.[0-9]+)?%?")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    """Defuse a text cell a spreadsheet would run as a formula (anyone can type "=..." into a name)."""
    if isinstance(value, str) and value[:1] in _FORMULA_START and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_response(rows: Iterable[Iterable[object]], filename: str) -> Response:
    """Return rows as a CSV attachment (the BOM makes Excel read UTF-8 Chinese text correctly)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
    return Response("\ufeff" + buf.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f"attachment; filename={filename}"})
