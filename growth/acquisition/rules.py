"""Pure rules for acquisition: channel codes, landing URLs, short codes, daily-cost rows.

No database, no Flask request. Messages are Simplified Chinese message ids wrapped in `lazy_gettext`: they
are translated when shown (str()), in the locale of whoever reads them, and read as Chinese outside a request.
"""

from __future__ import annotations

import csv
import io
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TypeAlias
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

from flask_babel import LazyString
from flask_babel import lazy_gettext as _l

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


Message: TypeAlias = "str | LazyString"


class RuleError(ValueError):
    """A value that breaks a rule; its message is translated when it is shown (str(err))."""

    def __init__(self, message: Message) -> None:
        super().__init__(message)
        self.message = message


LINK_CODE_RULE = _l("短链代码须为 3–32 位字母、数字、_ 或 -")


def same_row_message(first_row: int) -> Message:
    """Return the refusal of a cost row that repeats the channel and day of an earlier row."""
    return _l("与第 %(n)d 行的渠道和日期重复", n=first_row)


# ---------------------------------------------------------------- channels


def normalize_channel_code(text: str) -> str:
    """Return a channel code with surrounding blanks removed (case is kept: upper case is an error)."""
    return (text or "").strip()


def channel_code_error(code: str) -> Message | None:
    """Return why a channel code is invalid, or None when it is valid."""
    if len(code) < 2 or len(code) > 64:
        return _l("渠道代码长度须为 2–64 个字符")
    if not CHANNEL_CODE_RE.fullmatch(code):
        return _l("渠道代码只能包含小写字母、数字和下划线")
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
        raise RuleError(_l("未知的渠道类型：%(kind)s", kind=kind))
    return kind


# ---------------------------------------------------------------- tracking links


def validate_landing_url(url: str) -> str:
    """Return a landing URL if it is an absolute http(s) URL, else raise RuleError."""
    url = (url or "").strip()
    if not url:
        raise RuleError(_l("请填写落地页地址"))
    if len(url) > MAX_LANDING_URL:
        raise RuleError(_l("落地页地址过长（最多 %(n)d 个字符）", n=MAX_LANDING_URL))
    if any(ch.isspace() for ch in url):
        raise RuleError(_l("落地页地址不能包含空格"))
    parts = urlsplit(url)
    # Only http(s) with a host: a javascript: or relative target would make /t/ an open door.
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise RuleError(_l("落地页地址须以 http:// 或 https:// 开头"))
    return url


def validate_link_code(code: str) -> str:
    """Return a marketer-chosen short code or raise RuleError."""
    code = (code or "").strip()
    if not CUSTOM_LINK_CODE_RE.fullmatch(code):
        raise RuleError(LINK_CODE_RULE)
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
        raise RuleError(_l("请填写金额"))
    if value.startswith("-"):
        raise RuleError(_l("金额不能为负数"))
    if _THOUSANDS_RE.fullmatch(value):
        value = value.replace(",", "")  # Excel's "1,234.56" display format
    m = _AMOUNT_RE.fullmatch(value)
    if m is None:
        raise RuleError(_l("金额格式不正确，应为以元为单位的数字（最多两位小数）：%(text)s", text=text))
    whole, frac = m.group(1), m.group(2)
    if frac is not None and len(frac.rstrip("0")) > 2:
        raise RuleError(_l("金额最多保留两位小数"))
    fen = int(whole) * 100 + int((frac or "")[:2].ljust(2, "0"))
    if fen >= MAX_AMOUNT_FEN:
        raise RuleError(_l("金额过大"))
    return fen


def parse_cost_date(text: str) -> date:
    """Parse a business date "YYYY-MM-DD" (Excel's "YYYY/M/D" also accepted), or raise RuleError."""
    m = _DATE_RE.fullmatch((text or "").strip())
    if m is None:
        raise RuleError(_l("日期格式应为 YYYY-MM-DD：%(text)s", text=text))
    try:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        raise RuleError(_l("日期不存在：%(text)s", text=text)) from None


def cost_errors(day: date, amount_fen: int, now: datetime) -> list[tuple[str, Message]]:
    """Return (field, message) for each reason a daily cost is not acceptable; `now` is aware UTC."""
    errors = []
    if day > local_date(now):
        errors.append(("day", _l("日期不能晚于今天（北京时间）")))
    if amount_fen < 0:
        errors.append(("amount", _l("金额不能为负数")))
    if amount_fen >= MAX_AMOUNT_FEN:
        errors.append(("amount", _l("金额过大")))
    return errors


def validate_note(note: str) -> str:
    """Return a cost note trimmed, or raise RuleError when it is too long."""
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise RuleError(_l("备注最多 %(n)d 个字符", n=MAX_NOTE))
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
    """A refused row of a cost sheet (row 0: the file as a whole); the message is translated when shown."""

    row: int
    field: str | None
    message: Message


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
        raise RuleError(_l("无法识别文件编码，请保存为 UTF-8 的 CSV")) from None


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
        sheet.errors.append(RowError(0, None, err.message))
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
        sheet.errors.append(RowError(row_no + 1, None, _l("CSV 格式错误：%(error)s", error=str(err))))
        return sheet
    if header is None:
        sheet.errors.append(RowError(0, None, _l("文件是空的")))
        return sheet
    columns, missing = _header_map(header)
    if missing:
        sheet.errors.append(RowError(
            row_no, None,
            _l("第一行须为表头，包含 date, channel_code, amount（可选 note）；缺少：%(missing)s",
               missing=", ".join(missing)),
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
            sheet.errors.append(RowError(row_no + 1, None, _l("CSV 格式错误：%(error)s", error=str(err))))
            break
        row_no += 1
        if not any(cell.strip() for cell in record):
            continue  # blank lines, e.g. the trailing ones Excel leaves
        data_rows += 1
        if data_rows > MAX_IMPORT_ROWS:
            sheet.errors.append(RowError(row_no, None, _l("文件最多 %(n)d 行，其余未导入", n=MAX_IMPORT_ROWS)))
            break
        row, errors = _parse_cost_record(record, columns, row_no, now)
        if row is not None:
            first = seen.get((row.channel_code, row.day))
            if first is not None:
                errors.append(RowError(row_no, None, same_row_message(first)))
            else:
                seen[(row.channel_code, row.day)] = row_no
                sheet.rows.append(row)
        sheet.errors.extend(errors)
    if data_rows == 0 and not sheet.errors:
        sheet.errors.append(RowError(0, None, _l("文件中没有数据行")))
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
        errors.append(RowError(row_no, "date", err.message))
    # Only presence and length here: the service checks the code names a channel, and channels the
    # processor created from odd platform codes ("Baidu-SEM") must still be able to get costs.
    code = normalize_channel_code(cell("channel_code"))
    if not code:
        errors.append(RowError(row_no, "channel_code", _l("请填写渠道代码")))
    elif len(code) > 64:
        errors.append(RowError(row_no, "channel_code", _l("渠道代码最多 64 个字符")))
    try:
        amount = parse_cost_amount(cell("amount"))
    except RuleError as err:
        errors.append(RowError(row_no, "amount", err.message))
    note = ""
    try:
        note = validate_note(cell("note"))
    except RuleError as err:
        errors.append(RowError(row_no, "note", err.message))
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


# ---------------------------------------------------------------- reporting period

# The one list of periods the channel pages offer, with their labels; "30d" is the default.
PERIODS = {
    "7d": _l("最近 7 天"),
    "30d": _l("最近 30 天"),
    "90d": _l("最近 90 天"),
    "this_month": _l("本月"),
    "last_month": _l("上月"),
    "custom": _l("自定义"),
}
DEFAULT_PERIOD = "30d"
_ROLLING_DAYS = {"7d": 7, "30d": 30, "90d": 90}
MIN_PERIOD_DAY = date(2000, 1, 1)
MAX_PERIOD_DAYS = 3660  # ten years; a longer custom period is a typo, and its day bounds stay computable


@dataclass(frozen=True, slots=True)
class Period:
    """A reporting period of business days (Asia/Shanghai), both ends included."""

    key: str
    start: date
    end: date

    @property
    def days(self) -> int:
        """Return how many business days the period spans."""
        return (self.end - self.start).days + 1

    def url_args(self) -> dict[str, str]:
        """Return the query arguments that select this period again (kept in links and redirects)."""
        if self.key == "custom":
            return {"period": self.key, "start": self.start.isoformat(), "end": self.end.isoformat()}
        return {"period": self.key}


def default_period(today: date) -> Period:
    """Return the default period: the last 30 business days up to today."""
    return resolve_period(DEFAULT_PERIOD, today=today)


def resolve_period(key: str | None, start: str | None = None, end: str | None = None, *, today: date) -> Period:
    """Return the period a key (and, for "custom", start and end as YYYY-MM-DD) names, or raise RuleError.

    Rolling periods end today; "this_month" runs from the 1st to today; "last_month" is the whole
    previous calendar month. No key but a start or end given means a custom period.
    """
    key = (key or "").strip()
    if not key:
        key = "custom" if (start or "").strip() or (end or "").strip() else DEFAULT_PERIOD
    if key in _ROLLING_DAYS:
        return Period(key, today - timedelta(days=_ROLLING_DAYS[key] - 1), today)
    if key == "this_month":
        return Period(key, today.replace(day=1), today)
    if key == "last_month":
        last = today.replace(day=1) - timedelta(days=1)
        return Period(key, last.replace(day=1), last)
    if key != "custom":
        raise RuleError(_l("未知的统计期间：%(period)s", period=key))
    if not (start or "").strip() or not (end or "").strip():
        raise RuleError(_l("自定义期间须填写开始和结束日期"))
    first, last = parse_cost_date(start or ""), parse_cost_date(end or "")
    if first > last:
        raise RuleError(_l("开始日期不能晚于结束日期"))
    if first < MIN_PERIOD_DAY or last > today + timedelta(days=366):
        raise RuleError(_l("日期须在 %(first)s 至 %(last)s 之间", first=MIN_PERIOD_DAY.isoformat(),
                           last=(today + timedelta(days=366)).isoformat()))
    if (last - first).days + 1 > MAX_PERIOD_DAYS:
        raise RuleError(_l("自定义期间最长 %(n)d 天", n=MAX_PERIOD_DAYS))
    return Period(key, first, last)


def cost_per(cost_fen: int, count: int) -> int | None:
    """Return the cost per unit in whole fen (half rounded up), or None when there is nothing to divide by."""
    if count <= 0:
        return None
    return (2 * cost_fen + count) // (2 * count)
