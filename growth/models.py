"""The list of model modules, so metadata is complete for migrations and tests."""

from __future__ import annotations

import importlib

MODEL_MODULES = (
    "growth.auth.models",
    "growth.audit.models",
    "growth.acquisition.models",
    "growth.investors.models",
    "growth.events.models",
    "growth.locks",
    "growth.observability.models",
    "growth.rewards.models",
    "growth.referrals.models",
    "growth.crm.models",
    "channels.models",
    "campaigns.models",
    "dashboards.models",
)


def import_all_models() -> None:
    """Import every model module so Base.metadata knows every table."""
    for name in MODEL_MODULES:
        importlib.import_module(name)
