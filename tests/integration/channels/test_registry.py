"""The composition root registers every message channel's providers, and each builds from its settings."""

from __future__ import annotations

import pytest

from channels.adapters.port import EXTENSION, AdapterRegistry, Channel
from growth.app import create_app
from growth.config import TestConfig


@pytest.fixture
def registry(tmp_path, monkeypatch) -> AdapterRegistry:
    monkeypatch.setenv("GROWTH_INSTANCE_PATH", str(tmp_path / "instance"))
    config = {k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()}
    config["DATABASE_URL"] = f"sqlite:///{tmp_path / 'app.db'}"
    return create_app(config).extensions[EXTENSION]


def test_the_app_registers_the_sms_providers_of_the_spec(registry):
    assert registry.providers(Channel.SMS) == ["aliyun", "console", "tencent"]


def test_every_channel_has_a_provider(registry):
    for channel in Channel:
        assert registry.providers(channel), channel


def test_the_console_sms_builds_from_the_spec_variables(registry):
    adapter = registry.build(Channel.SMS, "console", {"GROWTH_SMS_SIGN_NAME": "投资人增长"})
    assert adapter.channel == Channel.SMS and adapter.provider == "console"


def test_an_unknown_provider_is_refused_with_the_known_ones_named(registry):
    with pytest.raises(KeyError, match="aliyun"):
        registry.build(Channel.SMS, "nosuch", {})
