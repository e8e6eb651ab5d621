"""Every audit action the code records reads as words on the audit page."""

from __future__ import annotations

import re
from pathlib import Path

from growth.audit.rules import ACTION_LABELS

ROOT = Path(__file__).resolve().parents[2]
# record("x.y", ...), record("a" if c else "b", ...) and action="x.y" passed through a helper.
_RECORDED = re.compile(
    r"""(?:record\(\s*|action=)(["'][a-z_]+\.[a-z_.]+["'](?:\s+if\s+[^"']+\s+else\s+["'][a-z_.]+["'])?)""")


def _recorded_actions() -> set[str]:
    actions: set[str] = set()
    for package in ("growth", "campaigns", "channels", "dashboards"):
        for path in (ROOT / package).rglob("*.py"):
            for match in _RECORDED.finditer(path.read_text(encoding="utf-8")):
                actions.update(re.findall(r"""["']([a-z_]+\.[a-z_.]+)["']""", match.group(1)))
    return actions


def test_every_recorded_audit_action_has_a_label():
    actions = _recorded_actions()
    assert "investor.pii_revealed" in actions  # the scan finds what it should
    assert actions - set(ACTION_LABELS) == set()


def test_a_channel_kind_reads_as_its_label_also_in_a_change():
    from growth.audit.rules import describe

    labels = {"sem": "搜索引擎"}.get
    created = describe("channel.created", {"code": "baidu_sem", "kind": "sem"}, kind_label=lambda k: labels(k, k))
    updated = describe("channel.updated", {"changes": {"kind": ["sem", "seo"]}}, kind_label=lambda k: labels(k, k))
    assert [f.value for f in created] == ["baidu_sem", "搜索引擎"]
    assert updated[0].value == "搜索引擎 → seo"
    # Another action's "kind" is not a channel kind.
    assert describe("link.created", {"kind": "sem"}, kind_label=lambda k: "x")[0].value == "sem"


def test_a_reveal_reason_reads_as_its_label_with_its_text():
    from flask import Flask
    from flask_babel import Babel

    from growth.audit.rules import describe

    app = Flask(__name__)
    Babel(app)
    with app.app_context():
        fields = describe("investor.pii_revealed", {"platform_user_id": "u_1", "reason": "other",
                                                    "reason_text": "客户来电"})
        shown = [(f.label, f.value) for f in fields]
        assert shown == [("平台用户ID", "u_1"), ("原因", "其他"), ("原因说明", "客户来电")]
        # Another action's free-text reason is shown as written.
        assert describe("kill_switch.on", {"reason": "other"})[0].value == "other"
