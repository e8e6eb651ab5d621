"""Message-channel settings: the environment (spec §1 `GROWTH_*`) with overrides from the settings page.

An override (a `ChannelSetting` row, written by the settings page and audited) wins over the
environment until it is cleared; without one the environment applies at every start. Delivery reads
the settings afresh every few seconds, so a change applies without a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from channels.models import ChannelSetting
from channels.rules import Cap, QuietHours, RetryPolicy, parse_caps, parse_quiet_hours

ENV_PREFIX = "GROWTH_"


def _positive_rate(value: str) -> None:
    try:
        rate = float(value)
    except ValueError:
        raise ValueError(_("速率须为数字（每秒条数，0 为不限）")) from None
    if rate < 0 or rate > 100_000:
        raise ValueError(_("速率须在 0 到 100000 之间"))


def _attempts(value: str) -> None:
    if not value.isdigit() or not 1 <= int(value) <= 100:
        raise ValueError(_("尝试次数须为 1 到 100 的整数"))


def _flag(value: str) -> None:
    if value not in ("true", "false"):
        raise ValueError(_("须为 true 或 false"))


def _sms_provider(value: str) -> None:
    if value not in ("console", "aliyun", "tencent"):
        raise ValueError(_("短信服务商须为 console、aliyun 或 tencent"))


def _sign_name(value: str) -> None:
    if len(value) > 20 or any(c in value for c in "【】"):
        raise ValueError(_("签名最多 20 个字，不含【】"))


def _quiet(value: str) -> None:
    try:
        parse_quiet_hours(value)
    except ValueError:
        raise ValueError(_("免打扰时段须写作 21:00-08:00（开始和结束不同），或 off 表示关闭")) from None


def _caps(value: str) -> None:
    try:
        parse_caps(value)
    except ValueError:
        raise ValueError(_("频次上限须写作 sms:1/day,all:3/week（渠道 sms、email、wechat 或 all；周期 day 或 week；"
                           "同一渠道同一周期只写一次），或 off 表示不限")) from None


def _reminder_days(value: str) -> None:
    if not value.isdigit() or int(value) > 30:
        raise ValueError(_("提前天数须为 0 到 30 的整数（0 为不提醒）"))


def _template_name(value: str) -> None:
    if len(value) > 100:
        raise ValueError(_("模板名称最多 100 个字"))


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting: its key, environment variable, default, label, and whether the page may change it."""

    key: str
    env: str
    default: str = ""
    label: Any = ""
    secret: bool = False
    editable: bool = False
    check: Callable[[str], None] | None = None
    switched: bool = False  # stored by its own service (the kill switch), not on the settings form; overrides apply


SETTINGS: tuple[Setting, ...] = (
    Setting("quiet_hours", "GROWTH_QUIET_HOURS", "21:00-08:00", _l("营销免打扰时段（北京时间）"), editable=True,
            check=_quiet),
    Setting("marketing_caps", "GROWTH_MARKETING_CAPS", "sms:1/day,all:3/week", _l("营销频次上限"), editable=True,
            check=_caps),
    Setting("sms_provider", "GROWTH_SMS_PROVIDER", "console", _l("短信服务商"), editable=True, check=_sms_provider),
    Setting("sms_sign_name", "GROWTH_SMS_SIGN_NAME", "", _l("短信签名"), editable=True, check=_sign_name),
    Setting("sms_endpoint", "GROWTH_SMS_ENDPOINT", "", _l("短信接口地址")),
    Setting("sms_protocol", "GROWTH_SMS_PROTOCOL", "https", _l("短信接口协议")),
    Setting("sms_access_key_id", "GROWTH_SMS_ACCESS_KEY_ID", "", _l("短信 AccessKey ID"), secret=True),
    Setting("sms_access_key_secret", "GROWTH_SMS_ACCESS_KEY_SECRET", "", _l("短信 AccessKey Secret"), secret=True),
    Setting("sms_app_id", "GROWTH_SMS_APP_ID", "", _l("短信应用 ID（腾讯云）")),
    Setting("sms_region", "GROWTH_SMS_REGION", "", _l("短信地域（腾讯云）")),
    Setting("wechat_appid", "GROWTH_WECHAT_APPID", "", _l("公众号 AppID")),
    Setting("wechat_secret", "GROWTH_WECHAT_SECRET", "", _l("公众号 AppSecret"), secret=True),
    Setting("wechat_token", "GROWTH_WECHAT_TOKEN", "", _l("公众号回调 Token"), secret=True),
    Setting("wechat_aes_key", "GROWTH_WECHAT_AES_KEY", "", _l("公众号回调 EncodingAESKey"), secret=True),
    Setting("wechat_api_base", "GROWTH_WECHAT_API_BASE", "https://api.weixin.qq.com/cgi-bin/", _l("微信接口地址")),
    Setting("smtp_url", "GROWTH_SMTP_URL", "", _l("SMTP 服务器"), secret=True),
    Setting("mail_from", "GROWTH_MAIL_FROM", "", _l("发件人")),
    Setting("platform_webhook_url", "GROWTH_PLATFORM_WEBHOOK_URL", "", _l("平台回调地址")),
    Setting("platform_webhook_secret", "GROWTH_PLATFORM_WEBHOOK_SECRET", "", _l("平台回调密钥"), secret=True),
    Setting("sms_rate", "GROWTH_SMS_RATE", "50", _l("短信速率（条/秒）"), editable=True, check=_positive_rate),
    Setting("wechat_rate", "GROWTH_WECHAT_RATE", "100", _l("微信速率（条/秒）"), editable=True, check=_positive_rate),
    Setting("email_rate", "GROWTH_EMAIL_RATE", "20", _l("邮件速率（封/秒）"), editable=True, check=_positive_rate),
    Setting("webhook_rate", "GROWTH_WEBHOOK_RATE", "50", _l("平台回调速率（次/秒）"), editable=True,
            check=_positive_rate),
    Setting("max_attempts", "GROWTH_DELIVERY_MAX_ATTEMPTS", "8", _l("最多尝试次数"), editable=True, check=_attempts),
    Setting("sms_paused", "GROWTH_SMS_PAUSED", "false", _l("暂停短信"), editable=True, check=_flag),
    Setting("wechat_paused", "GROWTH_WECHAT_PAUSED", "false", _l("暂停微信"), editable=True, check=_flag),
    Setting("email_paused", "GROWTH_EMAIL_PAUSED", "false", _l("暂停邮件"), editable=True, check=_flag),
    Setting("webhook_paused", "GROWTH_WEBHOOK_PAUSED", "false", _l("暂停平台回调"), editable=True, check=_flag),
    # Reminders before a reward expires (growth.rewards.reminders): how many days ahead, and the wording — a
    # marketing SMS template of the library by name (with its provider template code), empty for the default.
    Setting("reward_reminder_days", "GROWTH_REWARD_EXPIRY_REMINDER_DAYS", "3",
            _l("奖励到期提醒：提前天数（0 为不提醒）"), editable=True, check=_reminder_days),
    Setting("reward_reminder_template", "GROWTH_REWARD_EXPIRY_REMINDER_TEMPLATE", "",
            _l("奖励到期提醒：短信模板名称（模板库；留空用默认文案）"), editable=True, check=_template_name),
    # The marketing kill switch (spec §3): set by approvers through POST /api/v1/kill-switch, not the settings form.
    Setting("marketing_hold", "GROWTH_MARKETING_HOLD", "false", _l("营销消息一键暂停"), check=_flag, switched=True),
)
BY_KEY = {s.key: s for s in SETTINGS}

# The platform webhook is retried for at least a day (spec §1); messages to people give up sooner.
WEBHOOK_RETRY_SPAN = timedelta(hours=25)


def environment_values(environ: Mapping[str, str]) -> dict[str, str]:
    """Pick the channel settings' variables out of an environment (kept in app.config at start)."""
    return {s.env: environ[s.env] for s in SETTINGS if environ.get(s.env, "").strip() != ""}


def overrides(*, session: Session) -> dict[str, str]:
    """Return the settings overridden on the settings page."""
    return {key: value for key, value in session.execute(select(ChannelSetting.key, ChannelSetting.value))}


def check_value(key: str, value: str) -> str:
    """Return a value the page may store for a setting, stripped; raise ValueError with a bilingual reason."""
    setting = BY_KEY.get(key)
    if setting is None or not setting.editable:
        raise ValueError(_("此项不能在页面上修改：%(key)s", key=key))
    value = value.strip()
    if setting.check is not None:
        setting.check(value)
    return value


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    """Every channel setting in effect, and where each came from ("override", "environment", "default")."""

    values: Mapping[str, str]
    sources: Mapping[str, str] = field(default_factory=dict)

    def __getitem__(self, key: str) -> str:
        return self.values[key]

    @property
    def quiet_hours(self) -> QuietHours | None:
        """The marketing quiet period, None when off."""
        return parse_quiet_hours(self.values["quiet_hours"])

    @property
    def caps(self) -> tuple[Cap, ...]:
        """The marketing frequency caps, across every campaign."""
        return parse_caps(self.values["marketing_caps"])

    def rate(self, channel: str) -> float:
        """Messages a second for a channel's provider, across all workers (0 = no limit)."""
        return float(self.values.get(f"{channel}_rate") or 0)

    def paused(self, channel: str) -> bool:
        """Whether a channel is paused (its messages wait as `deferred`)."""
        return self.values.get(f"{channel}_paused") == "true"

    def marketing_held(self) -> bool:
        """Whether the marketing kill switch is on (every marketing message waits as `deferred`)."""
        return self.values.get("marketing_hold") == "true"

    def retry_policy(self, channel: str) -> RetryPolicy:
        """How often and how long a channel's messages are retried."""
        span = WEBHOOK_RETRY_SPAN if channel == "webhook" else None
        return RetryPolicy(max_attempts=int(self.values["max_attempts"]), give_up_after=span)

    def provider(self, channel: str) -> str | None:
        """The provider a channel sends with, or None when the channel is not configured (off)."""
        v = self.values
        if channel == "sms":
            return v["sms_provider"]
        if channel == "wechat":
            return "wechat" if v["wechat_appid"] and v["wechat_secret"] else None
        if channel == "email":
            return "smtp" if v["smtp_url"] else None
        if channel == "webhook":
            return "standard" if v["platform_webhook_url"] and v["platform_webhook_secret"] else None
        return None

    def adapter_settings(self, channel: str) -> dict[str, str]:
        """The settings a channel's adapter is built with, under their keys and environment names (both are read)."""
        prefix = {"sms": "sms_", "wechat": "wechat_", "email": "", "webhook": "platform_webhook_"}[channel]
        keys = ("smtp_url", "mail_from") if channel == "email" else [k for k in self.values if k.startswith(prefix)]
        chosen = {k: self.values[k] for k in keys if k in BY_KEY}
        return {**chosen, **{BY_KEY[k].env: v for k, v in chosen.items()}}


def load(*, session: Session, environment: Mapping[str, str]) -> ChannelConfig:
    """Return the settings in effect: an override, else the environment, else the default."""
    stored = overrides(session=session)
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    for s in SETTINGS:
        if (s.editable or s.switched) and s.key in stored:
            values[s.key], sources[s.key] = stored[s.key], "override"
        elif environment.get(s.env, "").strip():
            values[s.key], sources[s.key] = environment[s.env].strip(), "environment"
        else:
            values[s.key], sources[s.key] = s.default, "default"
    return ChannelConfig(values, sources)


def mask_secret(value: str) -> str:
    """Show a secret as its length in stars and the last 2 characters at most (never the whole)."""
    if not value:
        return ""
    tail = value[-2:] if len(value) >= 12 else ""
    return "•" * 6 + tail
