"""Settings a page overrides: configured defaults plus key/value rows, shared by the referral program and the CRM.

A domain's settings are a frozen dataclass with `as_text()` and a pure `parse(values, base=...)` that
raises `SettingsError`. Defaults come from the app config (`<PREFIX>_<KEY>`, set by `GROWTH_<PREFIX>_<KEY>`,
checked at start); a value changed on the page is a row of the domain's table (a `SettingRow` model) and
wins over its default (a row whose value no longer parses is ignored).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from flask import flash, redirect, render_template, request, url_for
from flask_babel import LazyString
from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from growth.config import ConfigError
from growth.db import mark_rollback
from growth.errors import DomainError
from growth.timeutil import utcnow


class SettingsError(ValueError):
    """A setting that cannot be used; `message` is for people, `key` names the setting."""

    def __init__(self, key: str, message: str | LazyString) -> None:
        super().__init__(str(message))
        self.key = key
        self.message = message


class TextSettings(Protocol):
    """Settings that can be written as the strings they are stored and edited as."""

    def as_text(self) -> dict[str, str]: ...


S = TypeVar("S", bound=TextSettings)


class Parser(Protocol[S]):
    """A domain's `parse_settings(values, base=...)`."""

    def __call__(self, values: Mapping[str, str], *, base: S | None = None) -> S: ...


class SettingRow:
    """Columns of a settings table: one setting changed on the page (a missing key takes its default)."""

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(500))
    updated_by: Mapped[str] = mapped_column(String(254), default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


def configured(config: Mapping[str, Any], *, prefix: str, keys: Sequence[str], parse: Parser[S]) -> S:
    """Return the settings the configuration gives; raise ConfigError naming the variable of a bad one."""
    names = {key: f"{prefix}_{key.upper()}" for key in keys}
    try:
        return parse({key: str(config[name]) for key, name in names.items() if name in config})
    except SettingsError as err:
        raise ConfigError(f"GROWTH_{names.get(err.key, err.key)}: {err.message}") from None


def current(model: type[SettingRow], *, session: Session, defaults: S, parse: Parser[S]) -> S:
    """Return the settings in effect: each one changed on the page, else its default."""
    settings = defaults
    for key, value in session.execute(select(model.key, model.value)):
        try:
            settings = parse({key: value}, base=settings)
        except SettingsError:  # written by an older version: its default applies
            continue
    return settings


def changes(values: Mapping[str, str], *, keys: Sequence[str], parse: Parser[S], before: S
            ) -> tuple[S, dict[str, list[str]]]:
    """Return the settings `values` make of `before` and what changed ({key: [old, new]}); DomainError when bad."""
    try:
        after = parse({k: v for k, v in values.items() if k in keys}, base=before)
    except SettingsError as err:
        raise DomainError(str(err.message), field=err.key) from None
    old, new = before.as_text(), after.as_text()
    return after, {k: [old[k], new[k]] for k in keys if old[k] != new[k]}


def write(model: type[SettingRow], changed: Mapping[str, list[str]], *, session: Session, by: str,
          now: datetime) -> None:
    """Store the new values of the changed settings ({key: [old, new]}) and flush."""
    for key, (_old, new) in changed.items():
        row = session.get(model, key)
        if row is None:
            session.add(model(key=key, value=new, updated_by=by, updated_at=now))  # type: ignore[call-arg]
        else:
            row.value, row.updated_by, row.updated_at = new, by, now
    session.flush()


def settings_page(template: str, *, shown: TextSettings, defaults: TextSettings, keys: Sequence[str],
                  labels: Mapping[str, Any], save: Callable[[dict[str, str]], object], saved: str, back: str) -> Any:
    """Show a settings page; on POST save the form: back to `back` with the `saved` message, or the form again (400)."""
    values, errors = shown.as_text(), {}
    if request.method == "POST":
        values = {key: request.form.get(key, "") for key in keys}
        try:
            save(values)
        except DomainError as err:
            mark_rollback()
            errors = {err.field or "": str(err.message)}
        else:
            flash(saved, "success")
            return redirect(url_for(back))
    return render_template(template, values=values, errors=errors, labels=labels, keys=keys,
                           defaults=defaults.as_text()), 400 if errors else 200
