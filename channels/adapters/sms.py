"""All SMS providers (spec §1 `GROWTH_SMS_PROVIDER`): console (the default), aliyun, tencent."""

from __future__ import annotations

from channels.adapters.aliyun_sms import AliyunSms, register_aliyun
from channels.adapters.console_sms import ConsoleSms, register_console
from channels.adapters.port import AdapterRegistry
from channels.adapters.sms_settings import SmsSettings
from channels.adapters.tencent_sms import TencentSms, register_tencent

__all__ = ["AliyunSms", "ConsoleSms", "SmsSettings", "TencentSms", "register_sms"]


def register_sms(registry: AdapterRegistry) -> None:
    """Register every SMS adapter; build one with `registry.build(Channel.SMS, settings.provider, settings)`."""
    register_console(registry)
    register_aliyun(registry)
    register_tencent(registry)
