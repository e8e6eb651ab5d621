"""The audit log page for administrators, with CSV export."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, render_template, request, url_for
from werkzeug.routing import BuildError

from growth.acquisition.models import kind_label
from growth.audit import rules
from growth.audit.models import AuditEntry
from growth.audit.services import list_entries, record
from growth.audit.targets import target_names
from growth.auth.permissions import Permission, require, role_label
from growth.db import request_session, short_write
from growth.exports import csv_response
from growth.inputs import page_arg

bp = Blueprint("audit", __name__, url_prefix="/admin/audit")

# The page each kind of target lives on: (endpoint, its id argument).
TARGET_PAGES = {
    "investor": ("investors.detail", "investor_id"),
    "channel": ("acquisition.channel", "channel_id"),
    "tracking_link": ("acquisition.channel", "channel_id"),
    "staff_user": ("auth.users", None),
    "api_token": ("auth.tokens", None),
}


@dataclass(frozen=True)
class EntryView:
    """An audit entry as the page shows it."""

    entry: AuditEntry
    action: str
    target_kind: str
    target_name: str
    target_url: str | None
    fields: list[rules.DetailField]


def _url(target_type: str | None, page_id: int | None) -> str | None:
    endpoint = TARGET_PAGES.get(target_type or "")
    if endpoint is None:
        return None
    name, arg = endpoint
    try:
        values: dict[str, Any] = {arg: page_id} if arg else {}
        return url_for(name, **values)
    except BuildError:  # the page is not part of this app (or was renamed): show the name without a link
        return None


def _views(entries: list[AuditEntry]) -> list[EntryView]:
    names = target_names(entries, session=request_session())
    views = []
    for e in entries:
        found = names.get((e.target_type or "", e.target_id or ""))
        name = found[0] if found else (f"#{e.target_id}" if e.target_id else "")
        url = _url(e.target_type, found[1]) if found else None
        views.append(EntryView(e, rules.action_label(e.action), rules.target_label(e.target_type), name, url,
                               rules.describe(e.action, e.details, role_label=role_label, kind_label=kind_label)))
    return views


@bp.route("/")
@require(Permission.AUDIT_VIEW)
def index():  # type: ignore[no-untyped-def]
    page = page_arg()
    action = request.args.get("action", "").strip() or None
    actor = request.args.get("actor", "").strip() or None
    entries, total = list_entries(session=request_session(), action=action, actor=actor, page=page)
    return render_template("audit/index.html", entries=_views(entries), total=total, page=page, per_page=50,
                           action=action or "", actor=actor or "", actions=rules.ACTION_LABELS)


@bp.route("/export.csv")
@require(Permission.AUDIT_VIEW)
def export():  # type: ignore[no-untyped-def]
    action = request.args.get("action", "").strip() or None
    actor = request.args.get("actor", "").strip() or None
    entries, _total = list_entries(session=request_session(), action=action, actor=actor, page=1, per_page=100_000)
    # The export keeps the full details as recorded (JSON), for machines and later audits.
    rows: list[list[object]] = [["id", "at_utc", "actor", "action", "target_type", "target_id", "ip", "details"]]
    rows += [[e.id, e.at.isoformat(), e.actor, e.action, e.target_type or "", e.target_id or "", e.ip or "",
              json.dumps(e.details, ensure_ascii=False, sort_keys=True)] for e in entries]
    with short_write() as audit:  # the export was read in the request's read transaction
        record("audit.exported", session=audit, details={"rows": len(entries)})
    return csv_response(rows, "audit.csv")
