"""Realistic demo data for the growth platform: channels, staff, products and platform events.

Pure generation (no database, no Flask): `growth demo` turns these into rows and posts the events.
Everything is deterministic for a seed and a `now`.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from faker import Faker

from growth.investors.rules import referral_code_for
from growth.money import bp_to_api, fen_to_api
from growth.timeutil import SHANGHAI, as_utc


@dataclass(frozen=True)
class DemoChannel:
    """An acquisition channel (渠道) of the demo data."""

    code: str
    name: str
    kind: str
    owner: str
    cost_per_day_fen: int
    landing_url: str


@dataclass(frozen=True)
class DemoStaff:
    """A staff member of the demo data, one per role."""

    email: str
    name: str
    role: str
    password: str


DEMO_STAFF: tuple[DemoStaff, ...] = (
    DemoStaff("admin@demo.growth.local", "陈志强", "admin", "demo-admin-2026"),
    DemoStaff("marketer@demo.growth.local", "李娜", "marketer", "demo-marketer-2026"),
    DemoStaff("approver@demo.growth.local", "王芳", "approver", "demo-approver-2026"),
    DemoStaff("agent@demo.growth.local", "张磊", "agent", "demo-agent-2026"),
    DemoStaff("agent2@demo.growth.local", "赵敏", "agent", "demo-agent2-2026"),
    DemoStaff("analyst@demo.growth.local", "刘洋", "analyst", "demo-analyst-2026"),
)

_OWNER = "marketer@demo.growth.local"
_LANDING = "https://invest.example.com/lp"

DEMO_CHANNELS: tuple[DemoChannel, ...] = (
    DemoChannel("baidu_sem", "百度SEM", "sem", _OWNER, 800_000, f"{_LANDING}/newbie?ch=baidu_sem"),
    DemoChannel("so360", "360搜索", "sem", _OWNER, 200_000, f"{_LANDING}/newbie?ch=so360"),
    DemoChannel("seo", "SEO优化", "seo", _OWNER, 50_000, f"{_LANDING}/about?ch=seo"),
    DemoChannel("wdzj", "网贷之家", "vertical", _OWNER, 300_000, f"{_LANDING}/platform?ch=wdzj"),
    DemoChannel("wdty", "网贷天眼", "vertical", _OWNER, 200_000, f"{_LANDING}/platform?ch=wdty"),
    DemoChannel("wechat_mp", "微信公众号", "wechat", _OWNER, 100_000, f"{_LANDING}/wechat?ch=wechat_mp"),
    DemoChannel("weibo", "微博", "weibo", _OWNER, 80_000, f"{_LANDING}/newbie?ch=weibo"),
    DemoChannel("qq_group", "QQ群", "qq_group", _OWNER, 20_000, f"{_LANDING}/redpacket?ch=qq_group"),
    DemoChannel("tieba", "论坛/贴吧", "forum", _OWNER, 30_000, f"{_LANDING}/newbie?ch=tieba"),
    DemoChannel("offline_event", "线下活动", "offline", _OWNER, 150_000,
                f"{_LANDING}/event?ch=offline_event"),
    DemoChannel("partner_travel", "合作渠道-旅游", "partner", _OWNER, 120_000,
                f"{_LANDING}/travel?ch=partner_travel"),
    DemoChannel("referral", "邀请好友", "referral", _OWNER, 0, f"{_LANDING}/invite?ch=referral"),
)

# (id, name, term_days, annual rate in basis points)
_PRODUCT_ROWS: tuple[tuple[str, str, int, int], ...] = (
    ("prd_newbie_7", "新手标", 7, 1200),
    ("prd_yyy_30", "月月盈", 30, 800),
    ("prd_jjf_90", "季季丰", 90, 900),
    ("prd_bnx_180", "半年享", 180, 1000),
    ("prd_nnh_365", "年年红", 365, 1100),
)

DEMO_PRODUCTS: tuple[dict, ...] = tuple(
    {"id": pid, "name": name, "term_days": term, "annual_rate": bp_to_api(bp)}
    for pid, name, term, bp in _PRODUCT_ROWS
)

DEFAULT_CHANNEL_CODES: tuple[str, ...] = tuple(c.code for c in DEMO_CHANNELS)

# code: (share of registrations, conversion quality, wealth). Quality q turns a base step
# probability p into p ** (1 / q): above 1 converts better, below 1 worse.
_CHANNEL_PROFILE: dict[str, tuple[float, float, float]] = {
    "baidu_sem": (22, 1.0, 1.0),
    "so360": (6, 0.9, 0.9),
    "seo": (8, 1.1, 1.0),
    "wdzj": (9, 1.6, 2.0),
    "wdty": (6, 1.45, 1.8),
    "wechat_mp": (12, 1.0, 0.9),
    "weibo": (5, 0.8, 0.8),
    "qq_group": (7, 0.55, 0.6),
    "tieba": (4, 0.75, 0.7),
    "offline_event": (3, 1.15, 1.6),
    "partner_travel": (4, 0.85, 1.1),
    "referral": (10, 1.4, 1.2),
}
_ORGANIC_PROFILE = (8.0, 1.1, 1.0)
_UNKNOWN_PROFILE = (5.0, 1.0, 1.0)

# Base probabilities of each step given the previous one (before channel quality and before
# recent registrants are cut off by `now`).
_P_KYC = 0.70
_P_CARD = 0.905
_P_DEPOSIT = 0.785
_P_INVEST = 0.845
_P_REPEAT = 0.42

_NEWBIE_CAP_FEN = 10_000_00
_MAX_INVEST_FEN = 200_000_00
_MIN_INVEST_FEN = 100_00

# Asia/Shanghai hour-of-day weights for registrations: quiet at night, lunch and evening peaks.
_HOUR_WEIGHTS = (2, 1, 0.8, 0.5, 0.5, 0.7, 1.5, 3, 5, 6, 7, 7, 8, 7, 6, 6, 6, 6, 6, 7, 9, 10, 9, 5)
_EMAIL_DOMAINS = ("example.com", "example.net", "example.org")
_VIRTUAL_PREFIXES = ("162", "165", "167", "170", "171")
_IP_FIRST_OCTETS = (36, 58, 59, 60, 61, 101, 106, 111, 112, 113, 114, 115, 116, 117, 119, 120, 121, 122,
                    123, 124, 125, 180, 182, 183, 218, 219, 220, 221, 222, 223)
_OPENID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def generate_events(*, seed: int, investors: int, now: datetime, days: int = 90,
                    channel_codes: Sequence[str] = DEFAULT_CHANNEL_CODES) -> list[dict]:
    """Return spec-conformant events for `investors` investors registering over the last `days` days."""
    if investors < 0:
        raise ValueError("investors must be >= 0")
    if days < 1:
        raise ValueError("days must be >= 1")
    return _Generator(seed=seed, now=now, days=days, channel_codes=channel_codes).run(investors)


def interest_fen(principal_fen: int, annual_rate_bp: int, term_days: int) -> int:
    """Return principal * rate * term / 365 in fen, rounded half up."""
    num = principal_fen * annual_rate_bp * term_days
    den = 10_000 * 365
    return (2 * num + den) // (2 * den)


@dataclass
class _Holding:
    investment_id: str
    principal_fen: int
    product: tuple[str, str, int, int]
    created: datetime


class _Generator:
    """One run of the generator: a seeded RNG, a seeded Faker and the events so far."""

    def __init__(self, *, seed: int, now: datetime, days: int, channel_codes: Sequence[str]) -> None:
        self.rng = random.Random(seed)
        self.fake = Faker("zh_CN")
        self.fake.seed_instance(seed)
        self.now = as_utc(now).astimezone(SHANGHAI).replace(microsecond=0)
        self.days = days
        self.codes = list(dict.fromkeys(channel_codes))
        self.raw: list[tuple[datetime, int, str, dict, dict]] = []
        self.counters = {"dep": 0, "inv": 0, "wd": 0}
        self.phones: set[str] = set()
        self.registered: list[str] = []
        self.referrers: list[tuple[str, datetime]] = []
        # Sources of a registration: (channel_code or None, profile, carries a referral code).
        sources: list[tuple[str | None, tuple[float, float, float], bool]] = []
        for code in self.codes:
            if code != "referral":
                sources.append((code, _CHANNEL_PROFILE.get(code, _UNKNOWN_PROFILE), False))
        sources.append(("referral" if "referral" in self.codes else None, _CHANNEL_PROFILE["referral"], True))
        sources.append((None, _ORGANIC_PROFILE, False))
        self.sources = sources
        self.source_cum = _cumulative([s[1][0] for s in sources])
        self.hour_cum = _cumulative(_HOUR_WEIGHTS)
        day_weights = []
        for k in range(days + 1):
            day = (self.now - timedelta(days=k)).date()
            weekend = 1.15 if day.weekday() >= 5 else 1.0
            day_weights.append((1.0 + 0.6 * (days - k) / days) * weekend)
        self.day_cum = _cumulative(day_weights)

    # -- orchestration ---------------------------------------------------------------------------

    def run(self, investors: int) -> list[dict]:
        """Generate every investor's history and return the events sorted by time."""
        plan, rings = self._plan(investors)
        for n, (t_reg, ring_no, member) in enumerate(plan):
            uid = f"u_{10001 + n}"
            if ring_no >= 0 and member > 0:
                self._bonus_hunter(uid, t_reg, rings[ring_no])
            else:
                ring = rings[ring_no] if ring_no >= 0 else None
                if ring is not None:
                    ring["leader"] = uid
                self._investor(uid, t_reg, ring)
            self.registered.append(uid)
        self.raw.sort(key=lambda r: (r[0], r[1]))
        return [
            {"id": f"evt_demo_{i}", "type": typ, "occurred_at": t.isoformat(), "user": dict(user),
             "data": data}
            for i, (t, _, typ, user, data) in enumerate(self.raw, start=1)
        ]

    def _plan(self, investors: int) -> tuple[list[tuple[datetime, int, int]], list[dict[str, Any]]]:
        """Return registration times (with bonus-hunter ring membership) sorted by time."""
        rng = self.rng
        plan: list[tuple[datetime, int, int]] = []
        rings: list[dict[str, Any]] = []
        ring_budget = round(investors * 0.015) if investors >= 100 else 0
        while ring_budget >= 4:
            size = min(ring_budget, rng.randint(4, 8))
            ring_budget -= size
            t = self._registration_time()
            times = [t]
            for _ in range(size - 1):
                t = t + timedelta(seconds=rng.randint(60, 900))
                times.append(t)
            if times[-1] > self.now:
                shift = times[-1] - self.now + timedelta(seconds=rng.randint(600, 7200))
                times = [x - shift for x in times]
            ring_no = len(rings)
            rings.append({"device_id": self._device_id(android=True), "ip": self._ip(), "leader": None})
            plan.extend((x, ring_no, m) for m, x in enumerate(times))
        while len(plan) < investors:
            plan.append((self._registration_time(), -1, 0))
        plan.sort()
        return plan, rings

    def _emit(self, t: datetime, typ: str, user: dict, data: dict) -> None:
        self.raw.append((t, len(self.raw), typ, user, data))

    # -- one ordinary investor ------------------------------------------------------------------

    def _investor(self, uid: str, t_reg: datetime, ring: dict[str, Any] | None) -> None:
        """Generate one investor's registration, funnel milestones, money and consent events."""
        rng = self.rng
        channel, referral_code, profile = self._source(t_reg)
        if ring is not None:
            channel = "qq_group" if "qq_group" in self.codes else None
            referral_code, profile = None, _CHANNEL_PROFILE["qq_group"]
        _, quality, wealth = profile
        user = self._profile(uid, wechat=channel == "wechat_mp")
        data: dict[str, Any] = {}
        if channel is not None:
            data["channel_code"] = channel
        if referral_code is not None:
            data["referral_code"] = referral_code
        if ring is not None:
            data["device_id"], data["ip"] = ring["device_id"], ring["ip"]
        else:
            if rng.random() < 0.85:
                data["device_id"] = self._device_id(android=rng.random() < 0.6)
            if rng.random() < 0.95:
                data["ip"] = self._ip()
        self._emit(t_reg, "user.registered", user, data)
        self._consents(user, t_reg)

        if rng.random() >= _p(_P_KYC, quality):
            return
        t = self._later(t_reg, _lognormal(rng, 6 * 60, 1.6))
        if t > self.now:
            return
        self._emit(t, "user.kyc_verified", user, {})
        if rng.random() >= _p(_P_CARD, quality):
            return
        t = self._later(t, _lognormal(rng, 4 * 60, 1.5))
        if t > self.now:
            return
        self._emit(t, "user.card_bound", user, {})
        if rng.random() >= _p(_P_DEPOSIT, quality):
            return
        t_dep = self._later(t, _lognormal(rng, 3 * 3600, 2.0))
        if t_dep > self.now:
            return

        level = math.exp(rng.gauss(math.log(3000), 1.1)) * wealth
        if rng.random() >= _p(_P_INVEST, quality):
            # Deposits, looks around, never invests; some take the money back out.
            amount = self._round_fen(min(level, 5000.0))
            self._emit(t_dep, "funds.deposited", user, {"deposit_id": self._next("dep"),
                                                       "amount": fen_to_api(amount)})
            t_wd = self._later(t_dep, _lognormal(rng, 5 * 86400, 1.0))
            if rng.random() < 0.3 and t_wd <= self.now:
                self._emit(t_wd, "funds.withdrawn", user, {"withdrawal_id": self._next("wd"),
                                                           "amount": fen_to_api(amount)})
            return

        n_investments = 1
        if rng.random() < _p(_P_REPEAT, quality):
            n_investments = 2 + min(int(rng.expovariate(0.7)), 8)
        self._investments(user, t_dep, level, n_investments)

    def _investments(self, user: dict, t_dep: datetime, level: float, n_investments: int) -> None:
        """Generate deposits, investments, maturities, early exits and withdrawals of one investor."""
        rng = self.rng
        balance = 0
        pending: list[tuple[datetime, int, str, _Holding]] = []  # cash coming back, by time
        last: _Holding | None = None
        t_inv = t_dep
        for k in range(n_investments):
            if k == 0:
                product = _PRODUCT_ROWS[0] if rng.random() < 0.65 else self._regular_product()
                amount = self._investment_fen(level, product)
                deposit = amount
                if rng.random() < 0.35:
                    deposit = -(-amount // 100_000) * 100_000  # round up to whole thousands of yuan
                self._emit(t_dep, "funds.deposited", user, {"deposit_id": self._next("dep"),
                                                           "amount": fen_to_api(deposit)})
                balance = deposit
                t_inv = self._later(t_dep, _lognormal(rng, 5 * 60, 1.3))
                if t_inv > self.now:
                    return
            else:
                assert last is not None
                maturity = last.created + timedelta(days=last.product[2])
                if last.product[2] <= 30 and rng.random() < 0.65:
                    t_inv = self._later(maturity, _lognormal(rng, 4 * 3600, 1.2))  # 回款后复投
                else:
                    t_inv = self._later(last.created, _lognormal(rng, 9 * 86400, 0.9))
                if t_inv > self.now:
                    break
                balance = self._settle(user, pending, t_inv, balance, next_investment=t_inv)
                product = self._regular_product()
                amount = self._investment_fen(level * 1.15, product)
                if balance < amount:
                    top_up = -(-(amount - balance) // 10_000) * 10_000  # whole hundreds of yuan
                    t_top = max(last.created + timedelta(seconds=1),
                                t_inv - timedelta(seconds=int(_lognormal(rng, 6 * 60, 1.0)) + 1))
                    if t_top >= t_inv:
                        t_inv = t_top + timedelta(seconds=30)
                        if t_inv > self.now:
                            break
                    self._emit(t_top, "funds.deposited", user, {"deposit_id": self._next("dep"),
                                                               "amount": fen_to_api(top_up)})
                    balance += top_up
            holding = _Holding(self._next("inv"), amount, product, t_inv)
            self._emit(t_inv, "investment.created", user, {
                "investment_id": holding.investment_id,
                "amount": fen_to_api(amount),
                "product": _product_dict(product),
            })
            balance -= amount
            if k == 0:
                weight = min(20, int(rng.paretovariate(1.3)))
                self.referrers.extend([(user["id"], t_inv)] * weight)
            term = product[2]
            if term >= 30 and rng.random() < 0.06:
                t_back = self._later(t_inv, rng.uniform(3 * 86400, term * 0.8 * 86400))
                heapq.heappush(pending, (t_back, len(self.raw), "investment.redeemed", holding))
            else:
                heapq.heappush(pending, (self._repayment_time(t_inv + timedelta(days=term)), len(self.raw),
                                         "investment.matured", holding))
            last = holding
        self._settle(user, pending, self.now, balance, next_investment=None)

    def _settle(self, user: dict, pending: list[tuple[datetime, int, str, _Holding]], until: datetime,
                balance: int, next_investment: datetime | None) -> int:
        """Pay back holdings due by `until` (maybe withdrawing some) and return the new balance."""
        rng = self.rng
        while pending and pending[0][0] <= until:
            t_back, _, typ, holding = heapq.heappop(pending)
            data: dict[str, Any] = {"investment_id": holding.investment_id,
                                    "amount": fen_to_api(holding.principal_fen)}
            back = holding.principal_fen
            if typ == "investment.matured":
                _, _, term, bp = holding.product
                interest = interest_fen(holding.principal_fen, bp, term)
                data["interest"] = fen_to_api(interest)
                back += interest
            self._emit(t_back, typ, user, data)
            balance += back
            if rng.random() < (0.55 if next_investment is None else 0.2):
                t_wd = self._later(t_back, _lognormal(rng, 2 * 3600, 1.2))
                if t_wd > self.now or (next_investment is not None and t_wd >= next_investment):
                    continue
                if rng.random() < 0.6 or balance < 200_00:
                    amount = balance
                else:
                    amount = max(100_00, int(balance * rng.uniform(0.2, 0.9)) // 10_000 * 10_000)
                if amount > 0:
                    self._emit(t_wd, "funds.withdrawn", user, {"withdrawal_id": self._next("wd"),
                                                               "amount": fen_to_api(amount)})
                    balance -= amount
        return balance

    # -- bonus hunters (羊毛党) ------------------------------------------------------------------

    def _bonus_hunter(self, uid: str, t_reg: datetime, ring: dict[str, Any]) -> None:
        """Generate a bonus hunter: shared device and IP, invited by the ring leader, minimum 新手标."""
        rng = self.rng
        user = {"id": uid, "phone": self._phone(virtual=True), "name": self.fake.name()}
        data: dict[str, Any] = {}
        if "referral" in self.codes and rng.random() < 0.7:
            data["channel_code"] = "referral"
        data["referral_code"] = referral_code_for(ring["leader"])
        data["device_id"], data["ip"] = ring["device_id"], ring["ip"]
        self._emit(t_reg, "user.registered", user, data)
        t = t_reg
        steps = ("user.kyc_verified", "user.card_bound", "funds.deposited", "investment.created")
        amount = rng.choice((100_00, 100_00, 200_00, 500_00))
        investment_id = ""
        for typ in steps:
            t = t + timedelta(seconds=rng.randint(40, 300))
            if t > self.now:
                return
            if typ == "funds.deposited":
                self._emit(t, typ, user, {"deposit_id": self._next("dep"), "amount": fen_to_api(amount)})
            elif typ == "investment.created":
                investment_id = self._next("inv")
                self._emit(t, typ, user, {"investment_id": investment_id, "amount": fen_to_api(amount),
                                          "product": _product_dict(_PRODUCT_ROWS[0])})
            else:
                self._emit(t, typ, user, {})
        _, _, term, bp = _PRODUCT_ROWS[0]
        t_back = self._repayment_time(t + timedelta(days=term))
        if t_back > self.now:
            return
        interest = interest_fen(amount, bp, term)
        self._emit(t_back, "investment.matured", user, {"investment_id": investment_id,
                                                        "amount": fen_to_api(amount),
                                                        "interest": fen_to_api(interest)})
        t_wd = t_back + timedelta(seconds=rng.randint(300, 3 * 3600))
        if t_wd <= self.now:
            self._emit(t_wd, "funds.withdrawn", user, {"withdrawal_id": self._next("wd"),
                                                       "amount": fen_to_api(amount + interest)})

    # -- pieces ------------------------------------------------------------------------------------

    def _source(self, t_reg: datetime) -> tuple[str | None, str | None, tuple[float, float, float]]:
        """Pick where a registration came from: (channel_code, referral_code, channel profile)."""
        rng = self.rng
        channel, profile, referred = self.sources[_pick(rng, self.source_cum)]
        if not referred:
            return channel, None, profile
        referrer = self._referrer(t_reg)
        if referrer is None:
            return None, None, _ORGANIC_PROFILE
        if channel is not None and rng.random() < 0.3:
            channel = None  # the invite link was lost; the code alone attributes it to 邀请好友
        return channel, referral_code_for(referrer), profile

    def _referrer(self, t_reg: datetime) -> str | None:
        """Return an earlier investor who had invested before `t_reg` (frequent inviters weigh more)."""
        rng = self.rng
        if self.referrers:
            for _ in range(8):
                uid, t_first = rng.choice(self.referrers)
                if t_first < t_reg:
                    return uid
        return rng.choice(self.registered) if self.registered else None

    def _profile(self, uid: str, *, wechat: bool) -> dict:
        """Return the `user` object of a new investor."""
        rng = self.rng
        user = {"id": uid, "phone": self._phone(virtual=False), "name": self.fake.name()}
        if rng.random() < 0.3:
            if rng.random() < 0.4:
                local = str(rng.randint(10_000_000, 3_999_999_999))  # QQ-number style
            else:
                local = f"{self.fake.user_name()}{rng.randint(0, 999) if rng.random() < 0.5 else ''}"
            user["email"] = f"{local}@{rng.choice(_EMAIL_DOMAINS)}"
        if rng.random() < (0.95 if wechat else 0.2):
            user["wechat_openid"] = "o" + "".join(rng.choices(_OPENID_ALPHABET, k=27))
        return user

    def _phone(self, *, virtual: bool) -> str:
        """Return a fresh mainland mobile number in E.164 form."""
        while True:
            if virtual:
                local = self.rng.choice(_VIRTUAL_PREFIXES) + f"{self.rng.randrange(10**8):08d}"
            else:
                local = self.fake.phone_number()
                if not (len(local) == 11 and local.isdigit() and local[0] == "1" and local[1] in "3456789"):
                    continue
            phone = "+86" + local
            if phone not in self.phones:
                self.phones.add(phone)
                return phone

    def _consents(self, user: dict, t_reg: datetime) -> None:
        """Maybe emit marketing-consent changes (退订 SMS, email opt-out, WeChat opt-in)."""
        rng = self.rng
        if rng.random() >= 0.05:
            return
        r = rng.random()
        if r < 0.6:
            channel, granted = "sms", False
        elif r < 0.8:
            channel, granted = "email", rng.random() < 0.3
        else:
            channel, granted = "wechat", rng.random() < 0.5
        t = self._later(t_reg, _lognormal(rng, 12 * 86400, 1.0))
        if t > self.now:
            return
        self._emit(t, "user.consent_changed", user, {"channel": channel, "granted": granted})
        if rng.random() < 0.15:
            t = self._later(t, _lognormal(rng, 10 * 86400, 1.0))
            if t <= self.now:
                self._emit(t, "user.consent_changed", user, {"channel": channel, "granted": not granted})

    def _registration_time(self) -> datetime:
        """Return a registration instant in (now - days, now], weighted by day and hour."""
        rng = self.rng
        start = self.now - timedelta(days=self.days)
        while True:
            day = (self.now - timedelta(days=_pick(rng, self.day_cum))).date()
            hour = _pick(rng, self.hour_cum)
            t = datetime(day.year, day.month, day.day, hour, rng.randrange(60), rng.randrange(60),
                         tzinfo=SHANGHAI)
            if start < t <= self.now:
                return t

    def _later(self, t: datetime, seconds: float) -> datetime:
        """Return `t` plus at least one second; long waits that end at night move to the morning."""
        later = t + timedelta(seconds=max(1, int(seconds)))
        if seconds > 3600 and 1 <= later.hour < 7:
            later = later.replace(hour=7) + timedelta(seconds=self.rng.randrange(90 * 60))
        return later

    def _repayment_time(self, due: datetime) -> datetime:
        """Return when the daily 10:00 repayment batch (回款) pays a holding due at `due`."""
        batch = due.replace(hour=10, minute=0, second=0) + timedelta(seconds=self.rng.randrange(20 * 60))
        return batch if batch >= due else batch + timedelta(days=1)

    def _regular_product(self) -> tuple[str, str, int, int]:
        return self.rng.choices(_PRODUCT_ROWS[1:], weights=(40, 30, 18, 12))[0]

    def _investment_fen(self, level: float, product: tuple[str, str, int, int]) -> int:
        """Return an investment amount in fen around the investor's level, within product limits."""
        amount = self._round_fen(level * math.exp(self.rng.gauss(0, 0.4)))
        if product[0] == _PRODUCT_ROWS[0][0]:
            amount = min(amount, _NEWBIE_CAP_FEN)
        return min(max(amount, _MIN_INVEST_FEN), _MAX_INVEST_FEN)

    def _round_fen(self, yuan: float) -> int:
        """Round a yuan amount the way people type it (hundreds, often thousands) and return fen."""
        if yuan >= 20_000 and self.rng.random() < 0.7:
            step = 10_000
        elif yuan >= 2_000 and self.rng.random() < 0.6:
            step = 1_000
        else:
            step = 100
        return max(100, int(round(yuan / step)) * step) * 100

    def _device_id(self, *, android: bool) -> str:
        if android:
            return f"{self.rng.getrandbits(64):016x}"
        raw = f"{self.rng.getrandbits(128):032X}"
        return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"

    def _ip(self) -> str:
        rng = self.rng
        first = rng.choice(_IP_FIRST_OCTETS)
        return f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randint(1, 254)}"

    def _next(self, kind: str) -> str:
        self.counters[kind] += 1
        return f"{kind}_demo_{self.counters[kind]}"


def _product_dict(product: tuple[str, str, int, int]) -> dict:
    pid, name, term, bp = product
    return {"id": pid, "name": name, "term_days": term, "annual_rate": bp_to_api(bp)}


def _p(base: float, quality: float) -> float:
    return base ** (1.0 / quality)


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


def _cumulative(weights: Sequence[float]) -> list[float]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return out


def _pick(rng: random.Random, cum: list[float]) -> int:
    """Return an index drawn with the given cumulative weights."""
    return min(bisect.bisect_right(cum, rng.random() * cum[-1]), len(cum) - 1)
