"""The WeChat adapter's pure parts: the mass-send quota, the token store's expiry, the settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from channels.adapters.wechat import MemoryTokenStore, WechatSettings, mass_sends_left

SHANGHAI = timezone(timedelta(hours=8))
NOW = datetime(2026, 12, 15, 10, 0, tzinfo=SHANGHAI)


def test_an_account_that_sent_nothing_this_month_has_four_mass_sends_left() -> None:
    assert mass_sends_left([], NOW) == 4


def test_each_mass_send_this_month_uses_one_of_the_four() -> None:
    sent = [datetime(2026, 12, d, 9, 0, tzinfo=SHANGHAI) for d in (1, 5, 9)]

    assert mass_sends_left(sent, NOW) == 1
    assert mass_sends_left([*sent, NOW], NOW) == 0
    assert mass_sends_left([*sent, NOW, NOW], NOW) == 0  # never negative


def test_the_month_is_the_shanghai_calendar_month_not_utc() -> None:
    # 2026-11-30 16:30 UTC is 2026-12-01 00:30 in Shanghai: December's quota.
    december_in_shanghai = datetime(2026, 11, 30, 16, 30, tzinfo=UTC)
    # 2026-11-30 15:59 UTC is 2026-11-30 23:59 in Shanghai: November's.
    november_in_shanghai = datetime(2026, 11, 30, 15, 59, tzinfo=UTC)

    assert mass_sends_left([december_in_shanghai, november_in_shanghai], NOW) == 3


def test_the_quota_starts_again_in_a_new_month() -> None:
    sent = [datetime(2026, 12, d, 9, 0, tzinfo=SHANGHAI) for d in (1, 2, 3, 4)]

    assert mass_sends_left(sent, datetime(2026, 12, 31, 23, 59, tzinfo=SHANGHAI)) == 0
    assert mass_sends_left(sent, datetime(2027, 1, 1, 0, 0, tzinfo=SHANGHAI)) == 4
    assert mass_sends_left(sent, datetime(2027, 12, 20, 0, 0, tzinfo=SHANGHAI)) == 4  # another year's December


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        mass_sends_left([], datetime(2026, 12, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        mass_sends_left([datetime(2026, 12, 1)], NOW)


def test_the_token_store_stops_serving_a_token_its_margin_before_it_expires() -> None:
    now = [0.0]
    store = MemoryTokenStore(margin=120, clock=lambda: now[0])
    store.set("wx_app_access_token", "T1", 7200)

    now[0] = 7079.9
    assert store.get("wx_app_access_token") == "T1"
    now[0] = 7080.0
    assert store.get("wx_app_access_token") is None
    assert store.get("wx_app_access_token", "none") == "none"


def test_the_token_store_keeps_a_value_without_ttl_until_it_is_deleted() -> None:
    now = [0.0]
    store = MemoryTokenStore(clock=lambda: now[0])
    store.set("k", "v")
    store.set("ignored", None, 10)

    now[0] = 10**9
    assert store.get("k") == "v"
    assert store.get("ignored") is None
    store.delete("k")
    assert store.get("k") is None


def test_settings_come_from_the_environments_names_or_field_names() -> None:
    settings = WechatSettings.from_mapping(
        {
            "GROWTH_WECHAT_APPID": "wx1",
            "secret": "s",
            "GROWTH_WECHAT_AES_KEY": "k" * 43,
            "GROWTH_WECHAT_TIMEOUT": "3",
            "GROWTH_WECHAT_API_BASE": "",
            "GROWTH_SMTP_URL": "smtp://x",
        }
    )

    assert (settings.appid, settings.secret, settings.aes_key, settings.timeout) == ("wx1", "s", "k" * 43, 3.0)
    assert settings.api_base == "https://api.weixin.qq.com/cgi-bin/"  # empty = the default


@pytest.mark.parametrize("base", ["api.weixin.qq.com/cgi-bin/", "ftp://x/"])
def test_an_api_base_that_is_not_an_http_url_is_refused(base: str) -> None:
    with pytest.raises(ValueError, match="GROWTH_WECHAT_API_BASE"):
        WechatSettings(appid="a", secret="b", api_base=base)
