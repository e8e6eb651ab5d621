"""The referrals projections: who referred whom (the linkage), and the referral records derived from it.

A registration may name a referrer (by referral code or platform user id) the log has not shown us
yet; when that referrer appears, the waiting referees are linked then, whatever the arrival order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from sqlalchemy import or_, select

from growth.db import table_of
from growth.investors.models import Investor
from growth.projections import LoggedEvent, Projection
from growth.referrals.models import Referral
from growth.referrals.records import affected, derive
from growth.referrals.rules import ProgramSettings
from growth.referrals.services import current_settings

_INVESTORS = table_of(Investor)


class ReferralsProjection(Projection):
    """Sets `referrer_id` for every investor whose registration was (re)decided or whose referrer just appeared."""

    name = "referrals"
    after = ("investors",)
    columns = {_INVESTORS: ("referrer_id",)}
    handles = frozenset()  # nothing per event: the registration data is the attribution projection's

    def load(self, events: Sequence[LoggedEvent]) -> None:
        """Registrations that named a referrer we had not seen yet get attributed again now."""
        batch = self.batch
        new = batch.new_investors
        codes = [r["referral_code"] for r in new] + [r["platform_user_id"] for r in new]
        for clause in batch.where_in(_INVESTORS.c.referral_code_used, codes):
            # Filtered on referrer_id here, not in SQL: the planner took "referrer_id IS NULL" (most rows)
            # for selective on a freshly grown table and scanned them all.
            for row in batch.session.execute(select(_INVESTORS).where(clause)).mappings():
                if row["referrer_id"] is not None:
                    continue
                batch.investors.setdefault(row["platform_user_id"], dict(row))
                batch.reattribute.add(row["platform_user_id"])

    def derive(self) -> None:
        batch = self.batch
        if not batch.reattribute:
            return
        invs = [batch.investors[uid] for uid in sorted(batch.reattribute)]
        codes = sorted({i["referral_code_used"] for i in invs if i["referral_code_used"]})
        referrers: dict[str, int] = {}
        by_code = list(batch.where_in(_INVESTORS.c.referral_code, codes))
        by_uid = list(batch.where_in(_INVESTORS.c.platform_user_id, codes))
        for code_clause, uid_clause in zip(by_code, by_uid, strict=True):
            query = select(_INVESTORS.c.id, _INVESTORS.c.referral_code, _INVESTORS.c.platform_user_id)
            for rid, rcode, ruid in batch.session.execute(query.where(or_(code_clause, uid_clause))):
                referrers[rcode] = rid
                referrers[ruid] = rid
        for inv in invs:
            referrer_id = referrers.get(inv["referral_code_used"] or "")
            inv["referrer_id"] = None if referrer_id == inv["id"] else referrer_id  # nobody refers themselves


class ReferralRecordsProjection(Projection):
    """Derives one referral record per referee (status, qualification, fraud flags) after the batch's rows are written.

    It runs in `write`, after the investors projection has written the batch's investor and
    investment rows, and re-derives every record the batch may have changed (`records.affected`).
    Staff reviews and the confirmation feed are not in the log: they live in their own tables, which
    the reset keeps, and the derivation reads them, so a replay rebuilds the same records and never
    confirms a referral twice. The composition root sets `defaults` (the configured settings).
    """

    name = "referral-records"
    after = ("investors", "referrals", "attribution")
    tables = (table_of(Referral),)
    handles = frozenset()
    defaults: ClassVar[ProgramSettings] = ProgramSettings()

    def write(self) -> None:
        changed = {inv["id"] for inv in self.batch.investors.values()}
        if not changed:
            return
        session = self.batch.session
        settings = current_settings(session=session, defaults=self.defaults)
        derive(session, affected(session, changed), settings)
