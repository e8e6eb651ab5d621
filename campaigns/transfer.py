"""Campaigns as YAML: `growth campaigns export [ID...]` and `growth campaigns import FILE` (spec §6).

The YAML is the spec §2 document, one per campaign, as a list. Reading keeps what looks like a number
with a decimal point, or a date, as the text it is (`amount: 50.00` stays "50.00", as the schema wants
it), so a file edited by hand means what it says. An import creates drafts, all or none: one broken
campaign refuses the whole file, with every problem listed by campaign and path.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import yaml
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns import services
from campaigns.definition import DefinitionInvalid, parse
from campaigns.models import Campaign
from growth.errors import Invalid, Problem


class _Loader(yaml.SafeLoader):
    """YAML's safe loader without its float and timestamp guesses (money, rates and times stay text), and with
    YAML 1.2's booleans (only true/false: `on`, the trigger's key, is not a boolean)."""


_GUESSES = ("tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool")
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _GUESSES]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))


def export_yaml(campaign_ids: Sequence[int], *, session: Session) -> str:
    """Return the campaigns (all of them when no id is given) as a YAML list of spec documents, by id."""
    query = select(Campaign).order_by(Campaign.id)
    if campaign_ids:
        query = query.where(Campaign.id.in_(campaign_ids))
    campaigns = list(session.scalars(query))
    missing = sorted(set(campaign_ids) - {c.id for c in campaigns})
    if missing:
        raise Invalid([Problem(str(i), "not_found", _l("没有这个活动：%(id)s", id=i)) for i in missing])
    return yaml.safe_dump([c.definition for c in campaigns], allow_unicode=True, sort_keys=False, width=120)


def read_yaml(text: str) -> list[Any]:
    """Parse a YAML file of campaigns (a list, or one campaign) into documents; raise Invalid if it is not YAML."""
    try:
        loaded = yaml.load(text, Loader=_Loader)  # noqa: S506 -- a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise Invalid([Problem("", "malformed", _l("不是 YAML：%(reason)s", reason=str(exc)))]) from None
    if isinstance(loaded, dict):
        return [loaded]
    if not isinstance(loaded, list) or not loaded:
        raise Invalid([Problem("", "malformed", _l("应为活动列表（或一个活动）"))])
    return loaded


def import_yaml(text: str, *, session: Session, actor_id: int | None, now: datetime) -> list[Campaign]:
    """Create a draft for every campaign of a YAML file, or none if any is broken (every problem listed)."""
    documents = read_yaml(text)
    problems: list[Problem] = []
    for i, document in enumerate(documents):
        try:
            parse(document)
        except DefinitionInvalid as err:
            problems += [Problem(f"[{i}].{p.path}".rstrip("."), p.code, p.message) for p in err.problems]
    if problems:
        raise Invalid(problems, message=_l("活动定义有误，请改正标出的项。"))
    return [services.create(d, session=session, actor_id=actor_id, now=now) for d in documents]
