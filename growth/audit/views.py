"""The audit log page for administrators, with CSV export."""

from __future__ import annotations

import csv
import io
import json

from flask import Blueprint, Response, render_template, request

from growth.audit.services import list_entries, record
from growth.auth.permissions import Permission, require
from growth.db import request_session, writes

bp = Blueprint("audit", __name__, url_prefix="/admin/audit")


def _cell(value: str) -> str:
    """Defuse a text cell a spreadsheet would run as a formula (anyone can type "=..." as a login email)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@bp.route("/")
@require(Permission.AUDIT_VIEW)
def index():  # type: ignore[no-untyped-def]
    page = max(request.args.get("page", 1, type=int), 1)
    action = request.args.get("action", "").strip() or None
    actor = request.args.get("actor", "").strip() or None
    entries, total = list_entries(session=request_session(), action=action, actor=actor, page=page)
    return render_template("audit/index.html", entries=entries, total=total, page=page, per_page=50,
                           action=action or "", actor=actor or "")


@bp.route("/export.csv")
@require(Permission.AUDIT_VIEW)
@writes
def export():  # type: ignore[no-untyped-def]
    action = request.args.get("action", "").strip() or None
    actor = request.args.get("actor", "").strip() or None
    entries, _total = list_entries(session=request_session(), action=action, actor=actor, page=1, per_page=100_000)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["id", "at_utc", "actor", "action", "target_type", "target_id", "ip", "details"])
    for e in entries:
        writer.writerow([e.id, e.at.isoformat(), *(_cell(v) for v in (
            e.actor, e.action, e.target_type or "", e.target_id or "", e.ip or "",
            json.dumps(e.details, ensure_ascii=False, sort_keys=True),
        ))])
    record("audit.exported", session=request_session(), details={"rows": len(entries)})
    return Response("\ufeff" + buf.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=audit.csv"})
