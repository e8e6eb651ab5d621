"""Pure rules for acquisition: channel codes, landing URLs, short codes, daily-cost rows.

No database, no Flask. Messages are bilingual ("中文 / English") because they are shown to people as is.
"""

from __future__ import annotations

import csv
import io
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

from growth.acquisition.models import CHANNEL_KINDS
from growth.investors.rules import mask_ip  # noqa: F401  (one masking definition; views and tests use rules.mask_ip)
from growth.timeutil import local_date

CHANNEL_CODE_RE = re.compile(r"[a-z0-9_]{2,64}")
# Short codes are read off posters and typed by hand: no 0/o, 1/l/i look-alikes.
LINK_CODE_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
LINK_CODE_LENGTH = 7
# A marketer may choose a readable code instead ("wdzj2026"); the column holds 32 characters.
CUSTOM_LINK_CODE_RE = re.compile(r"[A-Za-z0-9_-]{3,32}")
CLICK_ID_PREFIX = "c"
MAX_LANDING_URL = 1000
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
MAX_NOTE = 200
MAX_IMPORT_ROWS = 10_000
MAX_AMOUNT_FEN = 10**15  # one quadrillion fen: far above any daily spend, well inside BIGINT

_AMOUNT_RE = re.compile(r"(0|[1-9][0-9]{0,12})(?:\.([0-9]+))?")
_THOUSANDS_RE = re.compile(r"[1-9][0-9]{0,2}(?:,[0-9]{3})+(?:\.[0-9]+)?")
_DATE_RE = re.compile(r"([0-9]{4})[-/]([0-9]{1,2})[-/]([0-9]{1,2})")

# Header names a cost sheet may use, English or Chinese (Excel users rename columns).
COST_COLUMNS = ("date", "channel_code", "amount", "note")
_HEADER_ALIASES: dict[str, str] = {
    "date": "date", "day": "date", "日期": "date",
    "channel_code": "channel_code", "channel": "channel_code", "渠道代码": "channel_code", "渠道编码": "channel_code",
    "amount": "amount", "amount_yuan": "amount", "cost": "amount", "金额": "amount", "金额(元)": "amount",
    "金额（元）": "amount", "花费": "amount", "费用": "amount",
    "note": "note", "notes": "note", "备注": "note",
}


class RuleError(ValueError):
    """A value that breaks a rule; the message is bilingual and shown as is."""


# ---------------------------------------------------------------- channels


def normalize_channel_code(text: str) -> str:
    """Return a channel code with surrounding blanks removed (case is kept: upper case is an error)."""
    return (text or "").strip()


def channel_code_error(code: str) -> str | None:
    """Return why a channel code is invalid, or None when it is valid."""
    if len(code) < 2 or len(code) > 64:
        return "渠道代码长度须为 2–64 个字符 / Channel code must be 2–64 characters"
    if not CHANNEL_CODE_RE.fullmatch(code):
        return ("渠道代码只能包含小写字母、数字和下划线 / "
                "Channel code may contain only lowercase letters a-z, digits 0-9 and _")
    return None


def validate_channel_code(code: str) -> str:
    """Return the normalised channel code or raise RuleError."""
    code = normalize_channel_code(code)
    error = channel_code_error(code)
    if error:
        raise RuleError(error)
    return code


def validate_kind(kind: str) -> str:
    """Return the channel kind or raise RuleError when it is not one we know."""
    if kind not in CHANNEL_KINDS:
        raise RuleError(f"未知的渠道类型：{kind} / Unknown channel kind: {kind}")
    return kind


# ---------------------------------------------------------------- tracking links


def validate_landing_url(url: str) -> str:
    """Return a landing URL if it is an absolute http(s) URL, else raise RuleError."""
    url = (url or "").strip()
    if not url:
        raise RuleError("请填写落地页地址 / Landing URL is required")
    if len(url) > MAX_LANDING_URL:
        raise RuleError(f"落地页地址过长（最多 {MAX_LANDING_URL} 个字符） / "
                        f"Landing URL is too long (at most {MAX_LANDING_URL} characters)")
    if any(ch.isspace() for ch in url):
        raise RuleError("落地页地址不能包含空格 / Landing URL must not contain spaces")
    parts = urlsplit(url)
    # Only http(s) with a host: a javascript: or relative target would make /t/ an open door.
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise RuleError("落地页地址须以 http:// 或 https:// 开头 / Landing URL must start with http:// or https://")
    return url


def validate_link_code(code: str) -> str:
    """Return a marketer-chosen short code or raise RuleError."""
    code = (code or "").strip()
    if not CUSTOM_LINK_CODE_RE.fullmatch(code):
        raise RuleError("短链代码须为 3–32 位字母、数字、_ 或 - / "
                        "Short code must be 3–32 letters, digits, _ or -")
    return code


def new_link_code(choice: Callable[[str], str] = secrets.choice, length: int = LINK_CODE_LENGTH) -> str:
    """Return a random short-link code (31^7 ≈ 2.7e10 codes, easy to type from a poster)."""
    return "".join(choice(LINK_CODE_ALPHABET) for _ in range(length))


def new_click_id(token: Callable[[int], str] = secrets.token_urlsafe) -> str:
    """Return a click id: "c" and 20 random URL-safe characters (120 bits)."""
    return CLICK_ID_PREFIX + token(15)[:20]


def build_landing_url(landing_url: str, params: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """Append parameters to a landing URL, keeping its existing query and fragment.

    Our parameters win: an existing parameter of the same name is dropped, every other one is kept
    byte for byte. Empty values are left out.
    """
    pairs = [(k, v) for k, v in (params.items() if isinstance(params, Mapping) else params) if v]
    parts = urlsplit(landing_url)
    ours = {k for k, _v in pairs}
    kept = [
        piece for piece in parts.query.split("&")
        if piece and unquote_plus(piece.split("=", 1)[0]) not in ours
    ]
    added = [f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "&".join(kept + added), parts.fragment))


def tracking_params(*, click_id: str | None, channel_code: str, utm: Mapping[str, str]) -> list[tuple[str, str]]:
    """Return the parameters a tracked visit carries to the landing page, in a stable order."""
    pairs: list[tuple[str, str]] = []
    if click_id:
        pairs.append(("click_id", click_id))
    pairs.append(("channel_code", channel_code))
    pairs.extend((name, (utm.get(name) or "").strip()) for name in UTM_FIELDS)
    return pairs


def short_url(base_url: str, code: str) -> str:
    """Return the absolute short URL of a link code."""
    return f"{base_url.rstrip('/')}/t/{code}"


# ---------------------------------------------------------------- costs


def parse_cost_amount(text: str) -> int:
    """Parse a yuan amount such as "1234.56" (≥ 0, at most 2 decimals) into fen, or raise RuleError."""
    value = (text or "").strip().lstrip("¥￥").strip()
    if not value:
        raise RuleError("请填写金额 / Amount is required")
    if value.startswith("-"):
        raise RuleError("金额不能为负数 / Amount must not be negative")
    if _THOUSANDS_RE.fullmatch(value):
        value = value.replace(",", "")  # Excel's "1,234.56" display format
    m = _AMOUNT_RE.fullmatch(value)
    if m is None:
        raise RuleError(f"金额格式不正确，应为如 1234.56 的数字：{text} / "
                        f"Amount must be a number such as 1234.56: {text}")
    whole, frac = m.group(1), m.group(2)
    if frac is not None and len(frac.rstrip("0")) > 2:
        raise RuleError("金额最多保留两位小数 / Amount may have at most 2 decimal places")
    fen = int(whole) * 100 + int((frac or "")[:2].ljust(2, "0"))
    if fen >= MAX_AMOUNT_FEN:
        raise RuleError("金额过大 / Amount is too large")
    return fen


def parse_cost_date(text: str) -> date:
    """Parse a business date "YYYY-MM-DD" (Excel's "YYYY/M/D" also accepted), or raise RuleError."""
    m = _DATE_RE.fullmatch((text or "").strip())
    if m is None:
        raise RuleError(f"日期格式应为 YYYY-MM-DD：{text} / Date must be YYYY-MM-DD: {text}")
    try:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        raise RuleError(f"日期不存在：{text} / No such date: {text}") from None


def cost_errors(day: date, amount_fen: int, now: datetime) -> list[tuple[str, str]]:
    """Return (field, message) for each reason a daily cost is not acceptable; `now` is aware UTC."""
    errors = []
    if day > local_date(now):
        errors.append(("day", "日期不能晚于今天（北京时间） / Date must not be in the future (Asia/Shanghai)"))
    if amount_fen < 0:
        errors.append(("amount", "金额不能为负数 / Amount must not be negative"))
    if amount_fen >= MAX_AMOUNT_FEN:
        errors.append(("amount", "金额过大 / Amount is too large"))
    return errors


def validate_note(note: str) -> str:
    """Return a cost note trimmed, or raise RuleError when it is too long."""
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise RuleError(f"备注最多 {MAX_NOTE} 个字符 / Note must be at most {MAX_NOTE} characters")
    return note


@dataclass(frozen=True, slots=True)
class CostRow:
    """One valid row of a cost sheet; `row` is the line number people see (the header is row 1)."""

    row: int
    day: date
    channel_code: str
    amount_fen: int
    note: str


@dataclass(frozen=True, slots=True)
class RowError:
    """A refused row of a cost sheet (row 0: the file as a whole)."""

    row: int
    field: str | None
    message: str


@dataclass(slots=True)
class CostSheet:
    """The result of parsing a cost sheet: rows to store and rows refused."""

    rows: list[CostRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def decode_csv(data: bytes | str) -> str:
    """Decode an uploaded CSV: UTF-8 (with or without BOM), else GB18030 as saved by Chinese Excel."""
    if isinstance(data, str):
        return data.lstrip("\ufeff")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError:
        raise RuleError("无法识别文件编码，请保存为 UTF-8 的 CSV / "
                        "Cannot decode the file; save it as UTF-8 CSV") from None


def _header_map(header: list[str]) -> tuple[dict[str, int], list[str]]:
    columns: dict[str, int] = {}
    for index, name in enumerate(header):
        key = _HEADER_ALIASES.get(name.strip().lstrip("\ufeff").lower())
        if key and key not in columns:
            columns[key] = index
    missing = [c for c in COST_COLUMNS if c != "note" and c not in columns]
    return columns, missing


def parse_cost_csv(data: bytes | str, *, now: datetime) -> CostSheet:
    """Parse a cost sheet (header row required: date, channel_code, amount[, note]).

    Every data row is either returned as a CostRow or reported as RowError(s) with its line number;
    a second row for the same channel and day is refused (the first one stands), so a sheet never
    silently overwrites itself.
    """
    sheet = CostSheet()
    try:
        text = decode_csv(data)
    except RuleError as err:
        sheet.errors.append(RowError(0, None, str(err)))
        return sheet
    # Row numbers count records, blank ones included, so they match the row numbers Excel shows.
    records = csv.reader(io.StringIO(text, newline=""))
    row_no = 0
    header: list[str] | None = None
    try:
        for record in records:
            row_no += 1
            if any(cell.strip() for cell in record):
                header = record
                break
    except csv.Error as err:
        sheet.errors.append(RowError(row_no + 1, None, f"CSV 格式错误 / Malformed CSV: {err}"))
        return sheet
    if header is None:
        sheet.errors.append(RowError(0, None, "文件是空的 / The file is empty"))
        return sheet
    columns, missing = _header_map(header)
    if missing:
        sheet.errors.append(RowError(
            row_no, None,
            "第一行须为表头，包含 date, channel_code, amount（可选 note）；缺少：" + ", ".join(missing)
            + " / The first row must be a header with date, channel_code, amount (note optional); missing: "
            + ", ".join(missing),
        ))
        return sheet

    seen: dict[tuple[str, date], int] = {}
    data_rows = 0
    while True:
        try:
            record = next(records)
        except StopIteration:
            break
        except csv.Error as err:
            sheet.errors.append(RowError(row_no + 1, None, f"CSV 格式错误 / Malformed CSV: {err}"))
            break
        row_no += 1
        if not any(cell.strip() for cell in record):
            continue  # blank lines, e.g. the trailing ones Excel leaves
        data_rows += 1
        if data_rows > MAX_IMPORT_ROWS:
            sheet.errors.append(RowError(row_no, None, f"文件最多 {MAX_IMPORT_ROWS} 行，其余未导入 / At most "
                                                       f"{MAX_IMPORT_ROWS} rows per file; the rest was skipped"))
            break
        row, errors = _parse_cost_record(record, columns, row_no, now)
        if row is not None:
            first = seen.get((row.channel_code, row.day))
            if first is not None:
                errors.append(RowError(row_no, None, f"与第 {first} 行的渠道和日期重复 / "
                                                     f"Same channel and date as row {first}"))
            else:
                seen[(row.channel_code, row.day)] = row_no
                sheet.rows.append(row)
        sheet.errors.extend(errors)
    if data_rows == 0 and not sheet.errors:
        sheet.errors.append(RowError(0, None, "文件中没有数据行 / The file has no data rows"))
    return sheet


def _parse_cost_record(
    record: list[str], columns: dict[str, int], row_no: int, now: datetime
) -> tuple[CostRow | None, list[RowError]]:
    def cell(name: str) -> str:
        index = columns.get(name)
        return record[index].strip() if index is not None and index < len(record) else ""

    errors: list[RowError] = []
    day = amount = None
    try:
        day = parse_cost_date(cell("date"))
    except RuleError as err:
        errors.append(RowError(row_no, "date", str(err)))
    # Only presence and length here: the service checks the code names a channel, and channels the
    # processor created from odd platform codes ("Baidu-SEM") must still be able to get costs.
    code = normalize_channel_code(cell("channel_code"))
    if not code:
        errors.append(RowError(row_no, "channel_code", "请填写渠道代码 / channel_code is required"))
    elif len(code) > 64:
        errors.append(RowError(row_no, "channel_code",
                               "渠道代码最多 64 个字符 / Channel code is at most 64 characters"))
    try:
        amount = parse_cost_amount(cell("amount"))
    except RuleError as err:
        errors.append(RowError(row_no, "amount", str(err)))
    note = ""
    try:
        note = validate_note(cell("note"))
    except RuleError as err:
        errors.append(RowError(row_no, "note", str(err)))
    if day is not None and amount is not None:
        errors.extend(RowError(row_no, "date" if f == "day" else f, m) for f, m in cost_errors(day, amount, now))
    if errors or day is None or amount is None:
        return None, errors
    return CostRow(row_no, day, code, amount, note), errors


def cost_csv_rows(rows: Iterable[tuple[date, str, int, str]]) -> list[list[str]]:
    """Return a cost sheet (header first) in the import format, so an export can be edited and re-imported."""
    out = [list(COST_COLUMNS)]
    for day, code, amount_fen, note in rows:
        out.append([day.isoformat(), code, f"{amount_fen // 100}.{amount_fen % 100:02d}", note])
    return out
