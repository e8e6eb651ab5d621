"""Money and rate conversions: integer fen and basis points inside, strings at the edges."""

from __future__ import annotations

import re

_MONEY_RE = re.compile(r"^(0|[1-9][0-9]{0,14})(?:\.([0-9]{1,2}))?$")
_RATE_RE = re.compile(r"^(0|[1-9][0-9]?)(?:\.([0-9]{1,8}))?$")

# What the parsers below accept, as JSON Schema patterns for the API description (tests hold them to it).
MONEY_PATTERN = r"^(?:[1-9][0-9]{0,14}(?:\.[0-9]{1,2})?|0\.(?:[1-9][0-9]?|0[1-9]))$"  # > 0, at most 2 decimals
MONEY_OR_ZERO_PATTERN = r"^(?:0|[1-9][0-9]{0,14})(?:\.[0-9]{1,2})?$"
# A fraction in (0, 1) with at most 4 significant decimals (basis points) and at most 8 digits in all.
RATE_PATTERN = r"^0\.(?:[1-9]0{0,7}|[0-9][1-9]0{0,6}|[0-9]{2}[1-9]0{0,5}|[0-9]{3}[1-9]0{0,4})$"


class MoneyFormatError(ValueError):
    """A money or rate string that does not follow the contract."""


def parse_yuan(text: object) -> int:
    """Parse a positive yuan decimal string such as "1000.00" into integer fen."""
    if not isinstance(text, str):
        raise MoneyFormatError("must be a decimal string such as \"1000.00\"")
    m = _MONEY_RE.fullmatch(text)
    if m is None:
        if re.fullmatch(r"[0-9]+\.[0-9]{3,}", text):
            raise MoneyFormatError("at most 2 decimal places")
        raise MoneyFormatError("must be a decimal string such as \"1000.00\"")
    whole, frac = m.group(1), m.group(2) or ""
    fen = int(whole) * 100 + int(frac.ljust(2, "0"))
    if fen <= 0:
        raise MoneyFormatError("must be greater than 0")
    return fen


def parse_rate(text: object) -> int:
    """Parse an annual-rate fraction string such as "0.0850" into basis points (850)."""
    if not isinstance(text, str):
        raise MoneyFormatError("must be a decimal fraction string such as \"0.0850\"")
    m = _RATE_RE.fullmatch(text)
    if m is None:
        raise MoneyFormatError("must be a decimal fraction string such as \"0.0850\"")
    whole, frac = m.group(1), (m.group(2) or "")
    if len(frac.rstrip("0")) > 4:
        raise MoneyFormatError("at most 4 decimal places (basis points)")
    bp = int(whole) * 10000 + int(frac[:4].ljust(4, "0"))
    if bp <= 0 or bp >= 10000:
        raise MoneyFormatError("must be between 0 and 1 (exclusive)")
    return bp


def fen_to_api(fen: int) -> str:
    """Format fen as the API's yuan string: 100000 -> "1000.00"."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"


def format_yuan(fen: int | None) -> str:
    """Format fen for people: 100000000 -> "¥1,000,000.00"."""
    if fen is None:
        return "—"
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}¥{fen // 100:,}.{fen % 100:02d}"


def format_count(value: int | None) -> str:
    """Format a count for people with thousands separators: 32187 -> "32,187"."""
    if value is None:
        return "—"
    return f"{int(value):,}"


def bp_to_api(bp: int) -> str:
    """Format basis points as the API's fraction string: 850 -> "0.0850"."""
    return f"{bp // 10000}.{bp % 10000:04d}"


def format_rate(bp: int | None) -> str:
    """Format basis points for people: 850 -> "8.50%"."""
    if bp is None:
        return "—"
    return f"{bp // 100}.{bp % 100:02d}%"
