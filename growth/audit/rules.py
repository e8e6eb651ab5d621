"""How audit entries read to people: action, target and detail labels, values formatted (pure)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flask_babel import lazy_gettext as _l

from growth.money import format_count, format_yuan

ACTION_LABELS = {
    "auth.login": _l("登录"),
    "auth.logout": _l("退出登录"),
    "auth.login_failed": _l("登录失败"),
    "auth.login_throttled": _l("登录过于频繁被拒"),
    "user.created": _l("创建员工账号"),
    "user.role_changed": _l("修改角色"),
    "user.enabled": _l("启用账号"),
    "user.disabled": _l("停用账号"),
    "user.password_changed": _l("修改密码"),
    "user.password_reset": _l("重置密码"),
    "token.created": _l("创建 API 令牌"),
    "token.revoked": _l("吊销 API 令牌"),
    "channel.created": _l("创建渠道"),
    "channel.updated": _l("修改渠道"),
    "channel.deactivated": _l("停用渠道"),
    "channel.reactivated": _l("启用渠道"),
    "channel.wechat_qr_created": _l("生成微信带参二维码"),
    "link.created": _l("创建推广链接"),
    "link.updated": _l("修改推广链接"),
    "link.deactivated": _l("停用推广链接"),
    "link.reactivated": _l("启用推广链接"),
    "cost.set": _l("录入渠道成本"),
    "cost.deleted": _l("删除渠道成本"),
    "costs.exported": _l("导出渠道成本"),
    "costs.imported": _l("导入渠道成本"),
    "investor.pii_revealed": _l("查看投资人完整信息"),
    "investor.tagged": _l("给投资人加标签"),
    "investor.erased": _l("删除投资人个人信息"),
    "data_keys.rotated": _l("轮换数据密钥"),
    "investor.untagged": _l("移除投资人标签"),
    "investor.exported": _l("导出投资人"),
    "investor.searched": _l("按个人信息搜索投资人"),
    "audit.exported": _l("导出审计日志"),
    "events.replayed": _l("重放事件日志"),
    "messages.retried": _l("重试消息"),
    "messages.exported": _l("导出发送记录"),
    "channel_settings.changed": _l("修改渠道设置"),
    "channel_settings.cleared": _l("恢复渠道设置为环境变量"),
    "message_template.created": _l("创建消息模板"),
    "message_template.updated": _l("修改消息模板"),
    "message_template.archived": _l("归档消息模板"),
    "message_template.restored": _l("恢复消息模板"),
    "campaign.create": _l("创建活动"),
    "campaign.edit": _l("修改活动"),
    "campaign.submit": _l("提交活动审批"),
    "campaign.approve": _l("批准活动"),
    "campaign.reject": _l("驳回活动"),
    "campaign.pause": _l("暂停活动"),
    "campaign.resume": _l("恢复活动"),
    "campaign.cancel": _l("取消活动"),
    "campaign.start": _l("活动开始执行"),
    "campaign.finish": _l("活动结束"),
    "kill_switch.on": _l("营销一键暂停：开"),
    "kill_switch.off": _l("营销一键暂停：关"),
    "reward.granted_manually": _l("手工发放奖励"),
    "reward.grant_requested": _l("提交大额奖励发放申请"),
    "reward.request_approved": _l("批准奖励发放申请"),
    "reward.request_rejected": _l("驳回奖励发放申请"),
    "reward.revoked": _l("撤销奖励"),
    "rewards.exported": _l("导出奖励台账"),
    "referral.approved": _l("审核通过邀请"),
    "referral.rejected": _l("审核拒绝邀请"),
    "referral_settings.changed": _l("修改邀请计划设置"),
    "referral.pii_revealed": _l("查看邀请审核完整信息"),
    "crm_settings.changed": _l("修改客服跟进设置"),
    "crm.task_reassigned": _l("重新分配跟进任务"),
    "crm.message_sent": _l("客服发送模板消息"),
    "referrals.exported": _l("导出邀请记录"),
    "campaign.segment_saved": _l("保存人群分群"),
    "campaign.segment_replaced": _l("覆盖人群分群"),
    "campaign.segment_deleted": _l("删除人群分群"),
    "saved_search.saved": _l("保存筛选"),
    "saved_search.deleted": _l("删除保存的筛选"),
    "crm.tasks_exported": _l("导出跟进任务"),
}

TARGET_LABELS = {
    "campaign": _l("活动"),
    "investor": _l("投资人"),
    "channel": _l("渠道"),
    "tracking_link": _l("推广链接"),
    "staff_user": _l("员工账号"),
    "api_token": _l("API 令牌"),
    "channel_costs": _l("渠道成本"),
    "outbox_messages": _l("消息"),
    "channel_settings": _l("渠道设置"),
    "message_template": _l("消息模板"),
    "reward": _l("奖励"),
    "reward_request": _l("奖励发放申请"),
    "referral": _l("邀请"),
    "referral_settings": _l("邀请计划设置"),
    "saved_search": _l("保存的筛选"),
    "crm_task": _l("跟进任务"),
}

FIELD_LABELS = {
    "code": _l("代码"),
    "name": _l("名称"),
    "kind": _l("类型"),
    "owner": _l("负责人"),
    "notes": _l("备注"),
    "note": _l("备注"),
    "active": _l("启用"),
    "auto_created": _l("自动创建"),
    "channel": _l("渠道"),
    "channels": _l("渠道"),
    "channel_id": _l("渠道"),
    "landing_url": _l("落地页"),
    "utm": _l("UTM 参数"),
    "day": _l("日期"),
    "amount_fen": _l("金额"),
    "previous_fen": _l("原金额"),
    "changes": _l("变更"),
    "reason": _l("原因"),
    "rows": _l("行数"),
    "filename": _l("文件名"),
    "created": _l("新增"),
    "updated": _l("更新"),
    "unchanged": _l("未变"),
    "errors": _l("错误"),
    "email": _l("邮箱"),
    "role": _l("角色"),
    "from": _l("原值"),
    "to": _l("新值"),
    "user": _l("员工"),
    "platform_user_id": _l("平台用户ID"),
    "filters": _l("筛选条件"),
    "q": _l("搜索"),
    "milestone": _l("里程碑"),
    "stalled": _l("停滞"),
    "unmasked": _l("含完整个人信息"),
    "events": _l("事件数"),
    "count": _l("条数"),
    "ids": _l("消息 ID"),
    "fields": _l("修改的内容"),
    "class": _l("类别"),
    "message_class": _l("类别"),
    "provider_template": _l("服务商模板"),
    "referee": _l("被邀请人"),
    "referrer": _l("邀请人"),
    "confirmed": _l("已确认"),
    "tag": _l("标签"),
    "reason_text": _l("原因说明"),
}

# Why staff revealed someone's personal data (the reveal form's choices; `other` needs a text, `reason_text`).
REVEAL_REASON_LABELS = {
    "callback": _l("回访客户"),
    "identity": _l("核实身份"),
    "complaint": _l("客户投诉"),
    "other": _l("其他"),
}
REVEAL_REASONS = tuple(REVEAL_REASON_LABELS)
MAX_REVEAL_REASON = 200

MONEY_FIELDS = frozenset({"amount_fen", "previous_fen"})  # integer fen, shown as ¥
ROLE_ACTIONS = frozenset({"user.created", "user.role_changed"})  # role codes, shown as role names


@dataclass(frozen=True, slots=True)
class DetailField:
    """One labelled detail of an audit entry, formatted for people."""

    key: str
    label: str
    value: str


def action_label(action: str) -> str:
    """Return an action's label in the UI language (the code itself when unknown)."""
    label = ACTION_LABELS.get(action)
    return action if label is None else str(label)


def target_label(target_type: str | None) -> str:
    """Return a target type's label (the code itself when unknown)."""
    if not target_type:
        return ""
    label = TARGET_LABELS.get(target_type)
    return target_type if label is None else str(label)


def _label(key: str) -> str:
    label = FIELD_LABELS.get(key)
    return key if label is None else str(label)


def format_value(key: str, value: Any, *, role_label: Callable[[str], str] = str, role: bool = False) -> str:
    """Format one detail value: money as ¥, counts with separators, yes/no, lists and nested fields."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return str(_l("是") if value else _l("否"))
    if key in MONEY_FIELDS and isinstance(value, int):
        return format_yuan(value)
    if isinstance(value, int):
        return format_count(value)
    if role and isinstance(value, str):
        return role_label(value)
    if isinstance(value, list | tuple):
        return "、".join(format_value(key, v) for v in value) or "—"
    if isinstance(value, Mapping):
        parts = [f"{_label(k)}: {format_value(k, v)}" for k, v in value.items() if v not in (None, "", False)]
        return "；".join(parts) or "—"
    return str(value)


def describe(action: str, details: Mapping[str, Any] | None, *,
             role_label: Callable[[str], str] = str, kind_label: Callable[[str], str] = str) -> list[DetailField]:
    """Return an entry's details as labelled, formatted fields in their recorded order.

    `role_label` names role codes and `kind_label` acquisition-channel kinds (both given by the caller,
    which knows the value lists; this module stays free of other packages).
    """
    fields = []
    kind = action.startswith("channel.")
    reveal = action.endswith(".pii_revealed")

    def shown(field: str, value: Any) -> str:
        if kind and field == "kind" and isinstance(value, str) and value:
            return kind_label(value)
        if reveal and field == "reason" and value in REVEAL_REASON_LABELS:
            return str(REVEAL_REASON_LABELS[value])
        return format_value(field, value)

    for key, value in (details or {}).items():
        if key == "changes" and isinstance(value, Mapping):
            for field, pair in value.items():  # recorded as [old, new]
                old, new = pair if isinstance(pair, list | tuple) and len(pair) == 2 else (None, pair)
                change = f"{shown(field, old)} → {shown(field, new)}"
                fields.append(DetailField(field, _label(field), change))
            continue
        role = action in ROLE_ACTIONS and key in ("role", "from", "to")
        text = format_value(key, value, role_label=role_label, role=True) if role else shown(key, value)
        fields.append(DetailField(key, _label(key), text))
    return fields
