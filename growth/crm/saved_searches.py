"""Saved searches: the filters of the investor list or the worklist kept under a name, per staff member.

A saved search holds the page's query arguments only (never results). A search by personal data — a
whole phone, a name, an email or a phone fragment — is not saved: the name list is shown to colleagues
when shared, and the table would become a list of people's phone numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from growth.audit.services import record
from growth.crm.models import SAVED_SEARCH_PAGES, SavedSearch
from growth.errors import DomainError, Forbidden, NotFound
from growth.investors.rules import search_terms

MAX_NAME = 50
MAX_VALUE = 100  # the investor list's query box holds no more
MAX_PER_PAGE = 30  # saved searches one person keeps per page
SHOWN = 60  # chips shown per page (own and shared)


def clean_args(page: str, args: Mapping[str, str]) -> dict[str, str]:
    """Return the page's own, non-empty query arguments (others dropped, values cut to MAX_VALUE)."""
    keep = SAVED_SEARCH_PAGES.get(page, ())
    return {key: str(args[key]).strip()[:MAX_VALUE] for key in keep if str(args.get(key) or "").strip()}


def listing(page: str, *, user_id: int, session: Session) -> list[SavedSearch]:
    """Return a user's saved searches of a page and those colleagues shared, by name."""
    return list(session.scalars(select(SavedSearch).where(
        SavedSearch.page == page, or_(SavedSearch.owner_id == user_id, SavedSearch.shared.is_(True)))
        .order_by(SavedSearch.name, SavedSearch.id).limit(SHOWN)))


def save(page: str, name: str, args: Mapping[str, str], *, shared: bool, user_id: int, session: Session,
         now: datetime) -> SavedSearch:
    """Save (or replace, by name) a user's filters of a page; audited. Raise DomainError for a bad one."""
    if page not in SAVED_SEARCH_PAGES:
        raise NotFound(_("没有这个页面"))
    clean = (name or "").strip()
    if not clean or len(clean) > MAX_NAME:
        raise DomainError(_("名称须为 1 到 %(n)d 个字", n=MAX_NAME), field="name")
    values = clean_args(page, args)
    if not values:
        raise DomainError(_("当前没有筛选条件，无需保存"), field="name")
    if page == "investors" and search_terms(values.get("q"), may_see_pii=True).audited:
        raise DomainError(_("含个人信息（手机号、姓名、邮箱）的搜索不能保存"), field="name")
    search = session.scalar(select(SavedSearch).where(SavedSearch.owner_id == user_id, SavedSearch.page == page,
                                                      SavedSearch.name == clean))
    if search is None:
        mine = session.scalars(select(SavedSearch.id).where(SavedSearch.owner_id == user_id,
                                                            SavedSearch.page == page)).all()
        if len(mine) >= MAX_PER_PAGE:
            raise DomainError(_("每个页面最多保存 %(n)d 个筛选，请先删除不用的", n=MAX_PER_PAGE), field="name")
        search = SavedSearch(owner_id=user_id, page=page, name=clean, created_at=now)
        session.add(search)
    search.args, search.shared = values, shared
    session.flush()
    record("saved_search.saved", session=session, target_type="saved_search", target_id=search.id,
           details={"page": page, "name": clean, "args": values, "shared": shared})
    return search


def save_posted(page: str, form: Mapping[str, str], *, user_id: int, session: Session,
                now: datetime) -> tuple[dict[str, Any], str | None]:
    """Save the filters a page's save form posted; return them and the problem to show (None once saved)."""
    args: dict[str, Any] = dict(clean_args(page, form))
    try:
        save(page, form.get("name", ""), args, shared=form.get("shared") == "1", user_id=user_id, session=session,
             now=now)
    except DomainError as err:
        if err.field is None:
            raise
        return args, str(err.message)
    return args, None


def delete(search_id: int, page: str, *, user_id: int, session: Session) -> SavedSearch:
    """Delete one of the user's own saved searches of a page; audited. Raise NotFound or Forbidden."""
    search = session.get(SavedSearch, search_id)
    if search is None or search.page != page:
        raise NotFound(_("没有这个保存的筛选"))
    if search.owner_id != user_id:
        raise Forbidden(_("只能删除自己保存的筛选"))
    record("saved_search.deleted", session=session, target_type="saved_search", target_id=search.id,
           details={"page": page, "name": search.name})
    session.delete(search)
    session.flush()
    return search
