"""Panels other packages put on the home page (the kernel may not import them; the composition root registers)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from flask import Flask
from markupsafe import Markup

from growth.auth.permissions import Permission, role_has

EXTENSION = "growth.home.panels"


@dataclass(frozen=True, slots=True)
class HomePanel:
    """A block of the home page: shown to roles granted `permission`, rendered from the request's arguments."""

    key: str
    permission: Permission
    render: Callable[[Mapping[str, str]], Markup]
    order: int = 100


def register_panel(app: Flask, panel: HomePanel) -> None:
    """Add a panel to the app's home page; a key registered twice is an error."""
    panels: dict[str, HomePanel] = app.extensions.setdefault(EXTENSION, {})
    if panel.key in panels:
        raise ValueError(f"home panel {panel.key!r} is registered twice")
    panels[panel.key] = panel


def panels_for(app: Flask, role: str) -> list[HomePanel]:
    """Return the panels a role may see, in their order."""
    panels: dict[str, HomePanel] = app.extensions.get(EXTENSION, {})
    return sorted((p for p in panels.values() if role_has(role, p.permission)), key=lambda p: (p.order, p.key))
