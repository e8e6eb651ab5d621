"""Naming the targets of audit entries for the audit page (reads the domain models, so not in the kernel's services)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from growth.acquisition.models import AcquisitionChannel, TrackingLink
from growth.audit.models import AuditEntry
from growth.auth.models import ApiToken, StaffUser
from growth.investors.models import Investor


def target_names(entries: list[AuditEntry], *, session: Session) -> dict[tuple[str, str], tuple[str, int | None]]:
    """Return, per (target_type, target_id), a readable name and the id of the page it lives on.

    Investors are named by their platform user id (never personal data); a tracking link's page is
    its channel's. Targets that no longer exist are left out (the raw id is shown instead).
    """
    wanted: dict[str, set[int]] = {}
    for e in entries:
        if e.target_type and e.target_id and e.target_id.isdigit():
            wanted.setdefault(e.target_type, set()).add(int(e.target_id))
    names: dict[tuple[str, str], tuple[str, int | None]] = {}
    queries = {
        "investor": select(Investor.id, Investor.platform_user_id, Investor.id),
        "channel": select(AcquisitionChannel.id, AcquisitionChannel.name, AcquisitionChannel.id),
        "tracking_link": select(TrackingLink.id, TrackingLink.name, TrackingLink.channel_id),
        "staff_user": select(StaffUser.id, StaffUser.email, StaffUser.id),
        "api_token": select(ApiToken.id, ApiToken.name, ApiToken.id),
    }
    for kind, ids in wanted.items():
        query = queries.get(kind)
        if query is None:
            continue
        model_id = query.selected_columns[0]
        for row_id, name, page_id in session.execute(query.where(model_id.in_(sorted(ids)))):
            names[(kind, str(row_id))] = (name, page_id)
    return names
