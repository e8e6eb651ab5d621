"""The audit log page for administrators, with CSV export."""

from __future__ import annotations

import json

from flask import Blueprint, render_template, request

from growth.audit.services import list_entries, record
from growth.auth.permissions import Permission, require
from growth.db import request_session, short_write
from growth.exports import csv_response

bp = Blueprint("audit", __name__, url_prefix="/admin/audit")


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
def export():  # type: ignore[no-untyped-def]
    action = request.args.get("action", "").strip() or None
    actor = request.args.get("actor", "").strip() or None
    entries, _total = list_entries(session=request_session(), action=action, actor=actor, page=1, per_page=100_000)
    rows = [["id", "at_utc", "actor", "action", "target_type", "target_id", "ip", "details"]]
    rows += [[e.id, e.at.isoformat(), e.actor, e.action, e.target_type or "", e.target_id or "", e.ip or "",
              json.dumps(e.details, ensure_ascii=False, sort_keys=True)] for e in entries]
    with short_write() as audit:  # the export was read in the request's read transaction
        record("audit.exported", session=audit, details={"rows": len(entries)})
    return csv_response(rows, "audit.csv")
