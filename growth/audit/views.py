"""The audit log page for administrators, with CSV export."""

from __future__ import annotations

import json

from flask import Blueprint, render_template, request

from growth.audit.services import list_entries, record
from growth.auth.permissions import Permission, require
from growth.db import request_session, writes
from growth.exports import csv_response
from growth.inputs import page_arg

bp = Blueprint("audit", __name__, url_prefix="/admin/audit")


@bp.route("/")
@require(Permission.AUDIT_VIEW)
def index():  # type: ignore[no-untyped-def]
    page = page_arg()
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
    rows = [["id", "at_utc", "actor", "action", "target_type", "target_id", "ip", "details"]]
    rows += [[e.id, e.at.isoformat(), e.actor, e.action, e.target_type or "", e.target_id or "", e.ip or "",
              json.dumps(e.details, ensure_ascii=False, sort_keys=True)] for e in entries]
    record("audit.exported", session=request_session(), details={"rows": len(entries)})
    return csv_response(rows, "audit.csv")
