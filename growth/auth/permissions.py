"""Roles, permissions and the route decorators that declare them (deny by default)."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TypeVar

from flask_babel import lazy_gettext as _l

F = TypeVar("F", bound=Callable[..., object])


class Role(StrEnum):
    """A staff member's role."""

    ADMIN = "admin"
    MARKETER = "marketer"
    APPROVER = "approver"
    AGENT = "agent"
    ANALYST = "analyst"


# The one list of roles, in display order, with their labels (pages, forms and the CLI use these).
ROLE_LABELS = {
    Role.ADMIN: _l("管理员"),
    Role.MARKETER: _l("运营/市场"),
    Role.APPROVER: _l("审批人"),
    Role.AGENT: _l("客服"),
    Role.ANALYST: _l("管理层/分析"),
}
ROLE_VALUES: tuple[str, ...] = tuple(role.value for role in Role)


def role_label(role: str) -> str:
    """Return a role's label in the current language (the raw value for an unknown role)."""
    try:
        return str(ROLE_LABELS[Role(role)])
    except ValueError:
        return role


class Permission(StrEnum):
    """What a route needs; roles are granted sets of these."""

    HOME = "home"
    USERS_MANAGE = "users.manage"
    AUDIT_VIEW = "audit.view"
    TOKENS_OWN = "tokens.own"
    # Acquisition channels (渠道), their links, QR codes and costs; not message channels (channels/).
    ACQUISITION_VIEW = "acquisition.view"
    ACQUISITION_MANAGE = "acquisition.manage"
    ACQUISITION_COSTS_MANAGE = "acquisition.costs.manage"
    INVESTORS_VIEW = "investors.view"
    INVESTORS_PII = "investors.pii"
    # Putting tags on investors and taking them off (the people who work with investors: agents, marketers, admins;
    # not the read-only roles). Tags feed campaign audiences (`tag has`), so every change is audited.
    INVESTORS_TAG = "investors.tag"
    # Erasing an investor's personal data for good (PIPL; growth/privacy): administrators only.
    INVESTORS_ERASE = "investors.erase"
    EVENTS_VIEW = "events.view"
    EVENTS_REPLAY = "events.replay"
    FUNNEL_VIEW = "funnel.view"
    # Message channels (channels/): the delivery log, channel health and the template library …
    MESSAGES_VIEW = "messages.view"
    # … retrying messages and editing templates …
    MESSAGES_MANAGE = "messages.manage"
    # … and the channel settings (quiet hours, caps, signature, rates, pausing a channel).
    CHANNELS_SETTINGS = "channels.settings"
    # Campaigns (spec §3): everyone on staff reads them; marketers write them; approvers approve (never their
    # own); marketers and approvers pause, resume and cancel.
    CAMPAIGNS_VIEW = "campaigns.view"
    CAMPAIGNS_EDIT = "campaigns.edit"
    CAMPAIGNS_APPROVE = "campaigns.approve"
    CAMPAIGNS_CONTROL = "campaigns.control"
    # … and preview one before approving it (audience, messages, cost): marketers and approvers.
    CAMPAIGNS_PREVIEW = "campaigns.preview"
    # The marketing kill switch: pauses every marketing campaign and holds their messages (approvers, admins).
    KILL_SWITCH = "campaigns.kill_switch"
    # The incentive ledger: rewards, budgets and liability (reading) …
    REWARDS_VIEW = "rewards.view"
    # … and granting and revoking by hand, approving large manual grants.
    REWARDS_MANAGE = "rewards.manage"
    # The referral program: its records, tree, stats, share links and the referral-code API …
    REFERRALS_VIEW = "referrals.view"
    # … deciding flagged referrals in the review queue …
    REFERRALS_REVIEW = "referrals.review"
    # … and the program settings (qualification, hold, fraud thresholds).
    REFERRALS_SETTINGS = "referrals.settings"
    # The CRM: working one's follow-up tasks and logging calls (agents) …
    CRM_WORK = "crm.work"
    # … and managing it: every agent's tasks, reassigning, the rules' settings (admins).
    CRM_MANAGE = "crm.manage"
    # Channel economics (spec §7: "staff", so every role): aggregate figures per acquisition channel, no one's data.
    ECONOMICS_VIEW = "economics.view"
    # The home page's KPI strip and its page (registrations, first investors, volume, incentive spend against the
    # previous period): the people who steer the business — analysts/founders, marketers, approvers, admins; not
    # agents, whose home is their worklist.
    KPIS_VIEW = "kpis.view"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.MARKETER: frozenset({
        Permission.HOME, Permission.ECONOMICS_VIEW, Permission.KPIS_VIEW,
        Permission.TOKENS_OWN, Permission.ACQUISITION_VIEW, Permission.ACQUISITION_MANAGE,
        Permission.ACQUISITION_COSTS_MANAGE, Permission.INVESTORS_VIEW, Permission.INVESTORS_TAG,
        Permission.FUNNEL_VIEW,
        Permission.MESSAGES_VIEW, Permission.MESSAGES_MANAGE, Permission.REWARDS_VIEW,
        Permission.CAMPAIGNS_VIEW, Permission.CAMPAIGNS_EDIT, Permission.CAMPAIGNS_CONTROL,
        Permission.CAMPAIGNS_PREVIEW, Permission.REFERRALS_VIEW,
    }),
    Role.APPROVER: frozenset({
        Permission.HOME, Permission.ECONOMICS_VIEW, Permission.KPIS_VIEW,
        Permission.TOKENS_OWN, Permission.ACQUISITION_VIEW, Permission.FUNNEL_VIEW,
        Permission.MESSAGES_VIEW, Permission.REWARDS_VIEW, Permission.CAMPAIGNS_VIEW, Permission.CAMPAIGNS_APPROVE,
        Permission.CAMPAIGNS_CONTROL, Permission.CAMPAIGNS_PREVIEW, Permission.KILL_SWITCH, Permission.REFERRALS_VIEW,
        Permission.REFERRALS_REVIEW,
    }),
    Role.AGENT: frozenset({
        Permission.HOME, Permission.ECONOMICS_VIEW,
        Permission.TOKENS_OWN, Permission.INVESTORS_VIEW, Permission.INVESTORS_PII,
        Permission.INVESTORS_TAG, Permission.EVENTS_VIEW, Permission.MESSAGES_VIEW, Permission.CAMPAIGNS_VIEW,
        Permission.REFERRALS_VIEW,
        Permission.CRM_WORK,
    }),
    Role.ANALYST: frozenset({
        Permission.HOME, Permission.ECONOMICS_VIEW, Permission.KPIS_VIEW,
        Permission.TOKENS_OWN, Permission.ACQUISITION_VIEW, Permission.INVESTORS_VIEW,
        Permission.FUNNEL_VIEW, Permission.EVENTS_VIEW, Permission.MESSAGES_VIEW, Permission.REWARDS_VIEW,
        Permission.CAMPAIGNS_VIEW, Permission.REFERRALS_VIEW,
    }),
}


def role_has(role: str, permission: Permission) -> bool:
    """Tell whether a role is granted a permission."""
    try:
        return permission in ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return False


def require(permission: Permission) -> Callable[[F], F]:
    """Declare the permission a view needs; the app's request guard enforces it."""

    def mark(view: F) -> F:
        view.required_permission = permission  # type: ignore[attr-defined]
        return view

    return mark


def public(view: F) -> F:
    """Declare a view open to anonymous users (login page, static assets, signed webhooks)."""
    view.is_public = True  # type: ignore[attr-defined]
    return view
