"""The projection registry keeps a defined order and refuses what would break it; consent rules are order-free."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from itertools import permutations
from pathlib import Path

import pytest

from channels.rules import statement_wins
from growth.projections import Projection, Projections

T0 = datetime(2026, 10, 1, 2, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


class First(Projection):
    name = "first"


class Second(Projection):
    name = "second"
    after = ("first",)


def test_projections_run_in_the_order_they_were_registered() -> None:
    registry = Projections()
    registry.register(First)
    registry.register(Second)
    assert [p.name for p in registry] == ["first", "second"]


def test_a_projection_registered_before_one_it_needs_is_refused() -> None:
    with pytest.raises(ValueError, match="needs \\['first'\\]"):
        Projections().register(Second)


def test_a_projection_registered_twice_is_refused() -> None:
    registry = Projections()
    registry.register(First)
    with pytest.raises(ValueError, match="registered already"):
        registry.register(First)


def test_configured_sets_class_attributes_on_a_copy_and_leaves_the_original_alone() -> None:
    marker = object()
    configured = First.configured(changed=marker)
    assert configured.changed is marker and configured.name == "first"  # type: ignore[attr-defined]
    assert not hasattr(First, "changed")


def _winner(statements: list[tuple[datetime, bool, str]]) -> tuple[datetime, bool, str]:
    current = None
    for at, granted, source in statements:
        if statement_wins(current, at, granted, source):
            current = (at, granted, source)
    assert current is not None
    return current


def test_the_latest_consent_statement_wins_and_on_a_tie_the_opt_out_in_any_order() -> None:
    statements = [(T0, True, "platform_event"), (T0 + timedelta(seconds=1), True, "platform_event"),
                  (T0 + timedelta(seconds=1), False, "sms_reply"), (T0 + timedelta(seconds=1), False, "wechat")]
    winners = {_winner(list(order)) for order in permutations(statements)}
    assert winners == {(T0 + timedelta(seconds=1), False, "wechat")}


def test_channels_imports_only_the_growth_kernel() -> None:
    allowed = {"growth.db", "growth.config", "growth.timeutil", "growth.projections", "growth.auth.permissions",
               "growth.audit.services", "growth.errors", "growth.exports", "growth.inputs"}
    found: set[str] = set()
    for path in (ROOT / "channels").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
    ours = {m for m in found if m.split(".")[0] in ("growth", "campaigns", "dashboards")}
    assert ours and ours <= allowed, ours - allowed
