"""Tags staff put on investors (vip, 高净值, 回访中 …): checked, added, removed (audited) and read for lists.

Tags are not from the event log (a replay keeps them). Campaign audiences match them exactly (`tag has`), so a
tag is stored as typed, trimmed; control and invisible characters are refused, since a tag that only differs
by an invisible character would look the same and match nothing.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from growth.audit.services import record
from growth.errors import DomainError, NotFound
from growth.investors.models import Investor, InvestorTag

MAX_TAG = 50  # investor_tags.tag is String(50)
MAX_TAGS = 30  # tags one investor may carry
# Control (Cc), format/invisible (Cf), surrogate, private-use and unassigned characters, line/paragraph separators.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def clean_tag(text: str) -> str:
    """Return a tag as stored (trimmed), or raise DomainError (field "tag") saying what is wrong with it."""
    tag = text.strip()
    if not tag:
        raise DomainError(_("请输入标签"), field="tag")
    if len(tag) > MAX_TAG:
        raise DomainError(_("标签最多 %(n)d 个字", n=MAX_TAG), field="tag")
    if any(unicodedata.category(ch) in _REFUSED_CATEGORIES for ch in tag):
        raise DomainError(_("标签不能包含控制字符或不可见字符"), field="tag")
    return tag


def tags_of(investor_ids: Iterable[int], *, session: Session) -> dict[int, list[str]]:
    """Return each investor's tags, sorted (one query on the (investor_id, tag) index)."""
    ids = sorted(set(investor_ids))
    found: dict[int, list[str]] = {i: [] for i in ids}
    if not ids:
        return found
    rows = session.execute(select(InvestorTag.investor_id, InvestorTag.tag).where(InvestorTag.investor_id.in_(ids))
                           .order_by(InvestorTag.investor_id, InvestorTag.tag))
    for investor_id, tag in rows:
        found[investor_id].append(tag)
    return found


def add_tag(investor_id: int, text: str, *, by: int | None, session: Session, now: datetime) -> str:
    """Put a tag on an investor (once; a second time is a no-op) and audit it; return the tag as stored."""
    tag = clean_tag(text)
    if session.get(Investor, investor_id) is None:
        raise NotFound(_("找不到该投资人。"))
    have = tags_of([investor_id], session=session)[investor_id]
    if tag in have:
        return tag
    if len(have) >= MAX_TAGS:
        raise DomainError(_("每位投资人最多 %(n)d 个标签", n=MAX_TAGS), field="tag")
    try:
        with session.begin_nested():  # a concurrent add of the same tag: the unique key settles it
            session.add(InvestorTag(investor_id=investor_id, tag=tag, created_at=now, created_by=by))
    except IntegrityError:
        return tag
    record("investor.tagged", session=session, target_type="investor", target_id=investor_id, details={"tag": tag})
    return tag


def remove_tag(investor_id: int, tag: str, *, session: Session) -> bool:
    """Take a tag off an investor and audit it; return whether it was there."""
    if session.get(Investor, investor_id) is None:
        raise NotFound(_("找不到该投资人。"))
    removed = session.execute(delete(InvestorTag).where(InvestorTag.investor_id == investor_id, InvestorTag.tag == tag)
                              .execution_options(synchronize_session=False))
    if not removed.rowcount:  # type: ignore[attr-defined]
        return False
    record("investor.untagged", session=session, target_type="investor", target_id=investor_id, details={"tag": tag})
    return True

