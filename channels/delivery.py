"""Delivery workers: claim due outbox messages, check them, send them, record what happened.

One round (`Deliverer.run_once`):

1. **Claim**, in one write transaction: due messages (`queued`, `deferred` whose hold has ended, and
   `sending` ones whose worker died — a claim's `due_at` is its lease's end), `FOR UPDATE SKIP LOCKED`
   on PostgreSQL so several workers share the queue; SQLite's single writer makes one claimer. Each is
   checked at this moment, with the settings in effect now: channel off or paused, quiet hours
   (marketing only: `deferred` until the period ends), address and reachability, consent (marketing:
   no statement, no message), and the frequency caps, which are counted atomically (a conditional
   increment per investor, cap and period) so two workers or two campaigns never pass one together.
   A message that goes is marked `sending` with attempts + 1 before the commit.
2. **Send**, after the commit: concurrent provider calls (a thread pool), each at a slot of the
   provider's shared rate limit (`channels.limits`).
3. **Record**, in one write transaction: `sent`/`delivered`; a retry later (exponential backoff with
   full jitter) or `dead` once the retry policy is spent; `failed`; `unreachable` (and the refusal is
   kept for that address). A message that could not reach its investor hands over to the next channel
   of its fallback chain. Caps reserved for a message that did not go are given back.

A crash between 2 and 3 loses nothing: the claim's lease runs out and the message is sent again —
the one repeat the spec allows, since providers here take no idempotency key.

A stop (SIGTERM to `growth worker`) is not a crash: the sending threads make no new provider call, the
calls already made are recorded, and the messages of the claim whose call was not made yet are handed
back at once (`queued`, due now, attempts and caps as before the claim), so another worker sends them
without waiting for the lease to run out and nothing is sent twice.

WeChat marketing goes by mass send to a list of followers (4 a month): those messages are claimed by
campaign, up to 10,000 at a time, by one worker at a time (a lease), and sent as one job.

Messages are stored with a name slot where the investor's name goes (`channels.templates.NAME_SLOT`):
the claim reads each recipient's name with their addresses (one bulk read) and the provider call is built
from the content with the name filled in (`fill_name`), so the opt-out check sees the text as sent. A mass
send is one text for many followers: its slot is filled with "".
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import ColumnElement, and_, not_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from channels.adapters.port import EXTENSION as ADAPTERS
from channels.adapters.port import Adapter, AdapterRegistry, Channel, MessageClass, Outcome, Outgoing, SendResult
from channels.adapters.wechat import mass_sends_left
from channels.limits import RateLimiter, rate_limiter_for
from channels.models import CapUsage, ChannelSetting, ConsentState, OutboxMessage, Unreachable, WechatMassJob
from channels.outbox import enqueue_many, fallback_of
from channels.receipts import unsubscribe_link_for
from channels.recipients import Directory, Recipient, directory_of
from channels.rules import cap_period, quiet_until
from channels.services import contact_digest, mark_unreachable, store_override
from channels.settings import ChannelConfig, load
from channels.sms import has_opt_out
from channels.templates import fill_name
from growth.audit.services import record as audit
from growth.db import Database, among, get_db, table_of, update_many
from growth.locks import claim, new_holder_id
from growth.timeutil import SHANGHAI, utcnow

log = logging.getLogger("channels.delivery")

_OUTBOX = table_of(OutboxMessage)
SETTINGS_SECONDS = 5.0  # settings are read again this often: a change on the settings page applies without restart
PAUSED_RECHECK = timedelta(seconds=30)  # a paused channel's messages look again this often
# A message to an investor whose registration has not come yet (events arrive in any order) waits for the address
# this long, looking again this often; after that it is unreachable like any other without an address.
AWAIT_REGISTRATION = timedelta(hours=24)
REGISTRATION_RECHECK = timedelta(seconds=10)
MASS_LEASE = "wechat-mass-send"
LATE_SLOT = 0.025  # seconds a send may start after its rate-limit slot; later, it takes a new slot
MASS_MAX_RECIPIENTS = 10_000  # WeChat takes at most this many openids in one mass send


@dataclass(slots=True)
class Job:
    """One provider call: one message, or a WeChat mass send of several."""

    ids: list[int]
    channel: str
    provider: str
    outgoing: Outgoing
    rows: list[OutboxMessage]
    addresses: dict[int, str]  # investor id → the address used (for a refusal's digest)
    masked: dict[int, str]  # message id → masked recipient
    caps: dict[int, list[tuple[str, str]]] = field(default_factory=dict)  # message id → (scope, period) reserved


@dataclass(slots=True)
class Verdict:
    """A message that does not go now: its new status and why."""

    row: OutboxMessage
    status: str
    error_code: str | None = None
    error: str | None = None
    hold_reason: str | None = None
    due_at: datetime | None = None
    fall_back: bool = False
    masked: str | None = None


@dataclass(slots=True)
class Round:
    """What one claim produced."""

    jobs: list[Job] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)

    def __len__(self) -> int:
        return sum(len(j.ids) for j in self.jobs) + len(self.verdicts)


class Deliverer:
    """Claims, sends and records outbox messages for one worker process."""

    def __init__(self, app: Flask, *, holder: str | None = None, draw: Callable[[float, float], float] = random.uniform,
                 clock: Callable[[], datetime] = utcnow, environment: dict[str, str] | None = None) -> None:
        self.app = app
        self.db: Database = get_db(app)
        self.registry: AdapterRegistry = app.extensions[ADAPTERS]
        self.directory: Directory = directory_of(app)
        self.limiter: RateLimiter = rate_limiter_for(app)
        self.environment: dict[str, str] = dict(environment if environment is not None
                                                else app.config.get("CHANNEL_ENV") or {})
        self.batch = int(app.config["DELIVERY_BATCH_SIZE"])
        self.lease = timedelta(seconds=float(app.config["DELIVERY_LEASE_SECONDS"]))
        self.holder = holder or new_holder_id()
        self.draw = draw
        self.clock = clock
        self.threads = int(app.config["DELIVERY_THREADS"])
        self.pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="send")
        self._config: tuple[float, ChannelConfig] | None = None
        self._adapters: dict[tuple[str, str, tuple[tuple[str, str], ...]], Adapter] = {}
        self._adapter_lock = threading.Lock()
        self.stopping = threading.Event()  # `run` puts its stop event here: the sending threads watch it

    # --- settings and adapters --------------------------------------------------------------------

    def config(self, *, fresh: bool = False) -> ChannelConfig:
        """The settings in effect, read again every few seconds."""
        if fresh or self._config is None or time.monotonic() - self._config[0] > SETTINGS_SECONDS:
            with self.db.session_scope() as session:
                self._config = (time.monotonic(), load(session=session, environment=self.environment))
        return self._config[1]

    def adapter(self, channel: str, provider: str, cfg: ChannelConfig) -> Adapter:
        """The adapter for a provider with the settings in effect (built again when they change)."""
        settings = cfg.adapter_settings(channel)
        key = (channel, provider, tuple(sorted(settings.items())))
        with self._adapter_lock:
            adapter = self._adapters.get(key)
            if adapter is None:
                adapter = self.registry.build(Channel(channel), provider, settings)
                self._adapters[key] = adapter
            return adapter

    def close(self) -> None:
        """Stop the sending threads and close the adapters' connection pools."""
        self.pool.shutdown(wait=True)
        with self._adapter_lock:
            adapters, self._adapters = list(self._adapters.values()), {}
        for adapter in adapters:
            close = getattr(adapter, "close", None)  # adapters that keep connections open have one
            if callable(close):
                close()

    # --- one round --------------------------------------------------------------------------------

    def run(self, stop: threading.Event, idle: float) -> None:
        """Deliver until stopped, claiming the next batch while the threads send the last one.

        The claim (a database round trip and the checks) then overlaps the provider calls instead of
        following them; the outcomes of a batch are still recorded in one transaction once all are known.
        WeChat mass sends (a few a month) are looked for after every batch that was not full, and at
        least every `idle` seconds while full batches follow each other: not a transaction per batch.
        """
        self.stopping = stop
        in_flight: tuple[Sending, ChannelConfig] | None = None
        mass_checked = float("-inf")
        try:
            while not stop.is_set():
                cfg = self.config()
                with self.db.session_scope(write=True) as session:
                    batch = self._claim_messages(session, self.clock(), cfg)
                sending = self.submit(batch.jobs, cfg) if batch.jobs else None
                if in_flight is not None:
                    self._record_sent(*in_flight)
                in_flight = (sending, cfg) if sending is not None else None
                mass = 0
                if len(batch) < self.batch or time.monotonic() - mass_checked >= idle:
                    mass, mass_checked = self._mass_round(cfg), time.monotonic()
                if not batch and not mass and in_flight is None:
                    stop.wait(idle)
        finally:  # a batch already sent is recorded even when the loop stops on an error: no needless repeat
            if in_flight is not None:
                self._record_sent(*in_flight)

    def _record_sent(self, sending: Sending, cfg: ChannelConfig) -> None:
        results = collect(sending)
        left = unstarted(sending)
        with self.db.session_scope(write=True) as session:
            now = self.clock()
            self.record(session, results, now, cfg)
            if left:
                released = self.hand_back(session, left, now)
                log.info("stopping: handed back %d claimed messages not sent yet", released)

    def hand_back(self, session: Session, jobs: Sequence[Job], now: datetime) -> int:
        """Undo this worker's claim of messages whose provider call was never made; return how many."""
        current = self._current(session, [i for job in jobs for i in job.ids])
        updates: list[dict[str, Any]] = []
        for job in jobs:
            for row in job.rows:
                status, holder = current.get(row.id, ("", None))
                if status != "sending" or holder != self.holder:  # taken over meanwhile: the new claim stands
                    continue
                if row.investor_id is not None and job.caps.get(row.id):
                    self._give_back(session, row.investor_id, job.caps[row.id])
                # The rows still hold what they were before the claim (it was a bulk update): restore that.
                updates.append(_row_update(row, now=now, status="queued", due_at=now, lease_until=None,
                                           claimed_by=None, hold_reason=None))
        session.flush()
        session.expunge_all()
        update_many(session.connection(), _OUTBOX, updates)
        return len(updates)

    def _mass_round(self, cfg: ChannelConfig) -> int:
        with self.db.session_scope(write=True) as session:
            batch = self._claim_mass_send(session, self.clock(), cfg)
        if batch.jobs:
            self._record_sent(self.submit(batch.jobs, cfg), cfg)
        return len(batch)

    def run_once(self) -> int:
        """Claim, send and record one batch (and one WeChat mass send if any is due); return how many were handled."""
        cfg = self.config()
        with self.db.session_scope(write=True) as session:
            batch = self._claim_messages(session, self.clock(), cfg)
        if batch.jobs:
            self._record_sent(self.submit(batch.jobs, cfg), cfg)
        return len(batch) + self._mass_round(cfg)

    def _claim_messages(self, session: Session, now: datetime, cfg: ChannelConfig) -> Round:
        query = (select(OutboxMessage)
                 .where(OutboxMessage.status.in_(("queued", "deferred", "sending")), OutboxMessage.due_at <= now,
                        not_(and_(OutboxMessage.channel == "wechat", OutboxMessage.message_class == "marketing")))
                 .order_by(OutboxMessage.due_at, OutboxMessage.id).limit(self.batch))
        if self.db.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = list(session.scalars(query))
        return self._check(session, rows, now, cfg, mass=False)

    def _claim_mass_send(self, session: Session, now: datetime, cfg: ChannelConfig) -> Round:
        due = (select(OutboxMessage.id)
               .where(OutboxMessage.status.in_(("queued", "deferred", "sending")), OutboxMessage.due_at <= now,
                      OutboxMessage.channel == "wechat", OutboxMessage.message_class == "marketing")
               .order_by(OutboxMessage.due_at, OutboxMessage.id).limit(1))
        first_id = session.scalar(due)
        if first_id is None or not claim(MASS_LEASE, self.holder, session=session, now=now, ttl=self.lease):
            return Round()
        first = session.get_one(OutboxMessage, first_id)
        query = (select(OutboxMessage)
                 .where(OutboxMessage.status.in_(("queued", "deferred", "sending")), OutboxMessage.due_at <= now,
                        OutboxMessage.channel == "wechat", OutboxMessage.message_class == "marketing",
                        OutboxMessage.sender == first.sender,
                        OutboxMessage.campaign_id.is_(None) if first.campaign_id is None
                        else OutboxMessage.campaign_id == first.campaign_id)
                 .order_by(OutboxMessage.id).limit(MASS_MAX_RECIPIENTS))
        if self.db.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        text = first.content.get("text", "")
        rows = [r for r in session.scalars(query) if r.content.get("text", "") == text]
        return self._check(session, rows, now, cfg, mass=True)

    # --- the checks at send time ------------------------------------------------------------------

    def _check(self, session: Session, rows: list[OutboxMessage], now: datetime, cfg: ChannelConfig, *,
               mass: bool) -> Round:
        result = Round()
        if not rows:
            return result
        investor_ids = sorted({r.investor_id for r in rows if r.investor_id is not None})
        recipients = self.directory.recipients(investor_ids, session=session) if investor_ids else {}
        consent = self._consent(session, investor_ids)
        refusals = self._refusals(session, investor_ids)
        quiet_end = quiet_until(cfg.quiet_hours, now, SHANGHAI)
        going: list[tuple[OutboxMessage, str, str]] = []  # row, address, masked
        for row in rows:
            verdict, address, masked = self._verdict(row, cfg, now, quiet_end, recipients, consent, refusals)
            if verdict is not None:
                result.verdicts.append(verdict)
            else:
                going.append((row, address, masked))
        reserved: dict[int, list[tuple[str, str]]] = {}
        names = {i: r.name for i, r in recipients.items()}  # the claim's bulk read: no query per message
        for row, address, masked in going:
            if row.message_class == MessageClass.MARKETING and row.investor_id is not None:
                taken = self._take_caps(session, row.investor_id, row.channel, cfg, now)
                if taken is None:
                    result.verdicts.append(Verdict(row, "capped", error_code="cap", masked=masked,
                                                   error="the investor reached a marketing frequency cap"))
                    continue
                reserved[row.id] = taken
            name = names.get(row.investor_id, "") if row.investor_id is not None else ""
            result.jobs.extend(self._jobs_for(row, address, masked, cfg, now, name) if not mass else [])
        if mass:
            self._mass_job(session, [g for g in going if g[0].id in reserved], reserved, cfg, now, result)
        for job in result.jobs:
            job.caps = {i: reserved[i] for i in job.ids if i in reserved}
        self._apply_claims(session, result, now)
        return result

    def _among(self, column: Any, ids: Sequence[int]) -> ColumnElement[bool]:
        return among(column, ids, dialect=self.db.dialect)

    def _consent(self, session: Session, investor_ids: Sequence[int]) -> dict[tuple[int, str], bool]:
        query = select(ConsentState.investor_id, ConsentState.channel, ConsentState.granted).where(
            self._among(ConsentState.investor_id, investor_ids))
        return {(investor_id, channel): granted for investor_id, channel, granted in session.execute(query)}

    def _refusals(self, session: Session, investor_ids: Sequence[int]) -> dict[tuple[int, str], Unreachable]:
        query = select(Unreachable).where(self._among(Unreachable.investor_id, investor_ids))
        return {(r.investor_id, r.channel): r for r in session.scalars(query)}

    @staticmethod
    def _verdict(row: OutboxMessage, cfg: ChannelConfig, now: datetime, quiet_end: datetime | None,
                 recipients: dict[int, Recipient], consent: dict[tuple[int, str], bool],
                 refusals: dict[tuple[int, str], Unreachable]) -> tuple[Verdict | None, str, str]:
        channel, marketing = row.channel, row.message_class == MessageClass.MARKETING
        if cfg.paused(channel):  # a paused channel holds everything on it, configured or not
            return Verdict(row, "deferred", hold_reason="paused", due_at=now + PAUSED_RECHECK), "", ""
        if marketing and cfg.marketing_held():  # the marketing kill switch (spec §3)
            return Verdict(row, "deferred", hold_reason="kill_switch", due_at=now + PAUSED_RECHECK), "", ""
        if cfg.provider(channel) is None:
            return Verdict(row, "failed", "channel_off", f"the {channel} channel is not configured",
                           fall_back=True), "", ""
        if marketing and quiet_end is not None:
            return Verdict(row, "deferred", hold_reason="quiet_hours", due_at=quiet_end), "", ""
        if channel == Channel.WEBHOOK:
            return None, "", ""
        recipient = recipients.get(row.investor_id) if row.investor_id is not None else None
        address = recipient.addresses.get(channel, "") if recipient else ""
        if not address or recipient is None:
            if recipient is not None and not recipient.registered and now - row.created_at < AWAIT_REGISTRATION:
                return Verdict(row, "deferred", hold_reason="registration", due_at=now + REGISTRATION_RECHECK), "", ""
            return Verdict(row, "unreachable", "no_address", f"the investor has no {channel} address",
                           fall_back=True), "", ""
        masked = recipient.masked.get(channel, "")
        refused = refusals.get((recipient.investor_id, channel))
        if refused is not None and refused.contact_digest == contact_digest(address):  # new contact data clears it
            return Verdict(row, "unreachable", refused.code, "the provider refused this address before",
                           fall_back=True, masked=masked), address, masked
        if marketing and not consent.get((recipient.investor_id, channel), False):
            return Verdict(row, "skipped_no_consent", "no_consent", f"no consent to marketing by {channel}",
                           fall_back=True, masked=masked), address, masked
        if marketing and channel == Channel.SMS and not has_opt_out(
                fill_name({"text": str(row.content.get("text", ""))}, recipient.name)["text"]):  # the text as sent
            return Verdict(row, "failed", "sms_opt_out_missing", "a marketing SMS must carry an opt-out phrase",
                           masked=masked), address, masked
        return None, address, masked

    def _take_caps(self, session: Session, investor_id: int, channel: str, cfg: ChannelConfig,
                   now: datetime) -> list[tuple[str, str]] | None:
        """Count the message against every cap it falls under, atomically; None (and nothing counted) if one is full."""
        caps = sorted((c for c in cfg.caps if c.applies_to(channel)), key=lambda c: (c.scope, c.unit))
        taken: list[tuple[str, str]] = []
        insert_fn = pg_insert if self.db.dialect == "postgresql" else sqlite_insert
        for cap in caps:
            period = cap_period(cap, now, SHANGHAI)
            session.execute(insert_fn(CapUsage).values(investor_id=investor_id, scope=cap.scope, period=period, used=0)
                            .on_conflict_do_nothing())
            counted = session.execute(
                update(CapUsage).where(CapUsage.investor_id == investor_id, CapUsage.scope == cap.scope,
                                       CapUsage.period == period, CapUsage.used < cap.limit)
                .values(used=CapUsage.used + 1).execution_options(synchronize_session=False))
            if not getattr(counted, "rowcount", 0):
                self._give_back(session, investor_id, taken)
                return None
            taken.append((cap.scope, period))
        return taken

    @staticmethod
    def _give_back(session: Session, investor_id: int, taken: Iterable[tuple[str, str]]) -> None:
        for scope, period in taken:
            session.execute(update(CapUsage).where(CapUsage.investor_id == investor_id, CapUsage.scope == scope,
                                                   CapUsage.period == period, CapUsage.used > 0)
                            .values(used=CapUsage.used - 1).execution_options(synchronize_session=False))

    # --- building the provider calls --------------------------------------------------------------

    def _jobs_for(self, row: OutboxMessage, address: str, masked: str, cfg: ChannelConfig, now: datetime,
                  name: str) -> list[Job]:
        provider = cfg.provider(row.channel) or ""
        outgoing = self.outgoing(row, address, now, name=name)
        addresses = {row.investor_id: address} if row.investor_id is not None else {}
        return [Job([row.id], row.channel, provider, outgoing, [row], addresses, {row.id: masked})]

    def outgoing(self, row: OutboxMessage, address: str, now: datetime, *, name: str = "") -> Outgoing:
        """The provider-neutral message for one outbox row sent to `address`, `name` in its name slots."""
        c = fill_name(row.content, name)
        unsubscribe = ""
        if row.channel == Channel.EMAIL and row.message_class == MessageClass.MARKETING and row.investor_id:
            unsubscribe = unsubscribe_link_for(row.investor_id, "email", app=self.app, now=now)
        return Outgoing(
            message_id=str(row.id), channel=Channel(row.channel), message_class=MessageClass(row.message_class),
            to=address, text=str(c.get("text", "")), subject=str(c.get("subject", "")), html=str(c.get("html", "")),
            template_code=str(c.get("template_code", "")), params=dict(c.get("params") or {}),
            wechat_kind=str(c.get("wechat_kind", "")), template_id=str(c.get("template_id", "")),
            data=dict(c.get("data") or {}), url=str(c.get("url", "")), unsubscribe_url=unsubscribe,
        )

    def _mass_job(self, session: Session, going: list[tuple[OutboxMessage, str, str]],
                  reserved: dict[int, list[tuple[str, str]]], cfg: ChannelConfig, now: datetime, result: Round) -> None:
        if not going:
            return
        month_start = now.astimezone(SHANGHAI).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        sent = session.scalars(select(WechatMassJob.sent_at).where(WechatMassJob.sent_at >= month_start))
        openids = list(dict.fromkeys(address for _, address, _ in going))
        reason = None
        if mass_sends_left(list(sent), now) <= 0:
            reason = ("mass_quota", "this month's WeChat mass sends are used up (4 a month)")
        elif len(openids) < 2:
            reason = ("mass_needs_two", "a WeChat mass send goes to at least two followers")
        if reason is not None:
            for row, _, masked in going:
                result.verdicts.append(Verdict(row, "failed", reason[0], reason[1], fall_back=True, masked=masked))
                if row.investor_id is not None:
                    self._give_back(session, row.investor_id, reserved.pop(row.id, []))
            return
        rows = [row for row, _, _ in going]
        first = rows[0]
        # One text for every follower: it cannot carry each one's name. The slot is filled with "" (what a
        # template gives an investor without a name), so "{{ investor.name }}您好" reads "您好" to everyone.
        text = fill_name({"text": str(first.content.get("text", ""))}, "")["text"]
        outgoing = Outgoing(message_id=str(first.id), channel=Channel.WECHAT, message_class=MessageClass.MARKETING,
                            to=tuple(openids), text=text, wechat_kind="mass")
        result.jobs.append(Job([r.id for r in rows], "wechat", cfg.provider("wechat") or "", outgoing, rows,
                               {r.investor_id: a for r, a, _ in going if r.investor_id is not None},
                               {r.id: m for r, _, m in going}))

    def _apply_claims(self, session: Session, result: Round, now: datetime) -> None:
        # The claimed rows change in these columns only: a narrower bulk update than the verdicts' full rows.
        lease_end = now + self.lease
        claims = [{"id": row.id, "status": "sending", "attempts": row.attempts + 1, "due_at": lease_end,
                   "lease_until": lease_end, "claimed_by": self.holder, "hold_reason": None, "provider": job.provider,
                   "recipient_masked": job.masked.get(row.id), "updated_at": now}
                  for job in result.jobs for row in job.rows]
        updates: list[dict[str, Any]] = []
        fallbacks = []
        for v in result.verdicts:
            final = v.status not in ("deferred",)
            updates.append(_row_update(v.row, status=v.status, hold_reason=v.hold_reason,
                                       due_at=v.due_at or v.row.due_at, lease_until=None, claimed_by=None,
                                       error_code=v.error_code or (v.row.error_code if not final else None),
                                       error=v.error or (v.row.error if not final else None),
                                       recipient_masked=v.masked or v.row.recipient_masked, now=now))
            if v.fall_back:
                fallbacks.append(v.row)
        session.flush()
        session.expunge_all()  # the rows are written below in bulk; the loaded copies are stale after
        update_many(session.connection(), _OUTBOX, claims)
        update_many(session.connection(), _OUTBOX, updates)
        self._fall_back(session, fallbacks, now)

    def _fall_back(self, session: Session, rows: Iterable[OutboxMessage], now: datetime) -> None:
        nexts = [m for m in (fallback_of(r) for r in rows) if m is not None]
        if nexts:
            enqueue_many(nexts, session=session, now=now)

    # --- sending ----------------------------------------------------------------------------------

    def send(self, jobs: Sequence[Job], cfg: ChannelConfig) -> list[tuple[Job, SendResult]]:
        """Make every job's provider call, concurrently, each at its rate-limit slot; never raises."""
        return collect(self.submit(jobs, cfg))

    def submit(self, jobs: Sequence[Job], cfg: ChannelConfig) -> Sending:
        """Start every job's provider call on the sending threads; `collect` waits for the outcomes."""
        by_provider: dict[tuple[str, str], list[Job]] = defaultdict(list)
        for job in jobs:
            by_provider[(job.channel, job.provider)].append(job)
        done: list[tuple[Job, SendResult]] = []
        calls: deque[tuple[Adapter, Job, float, Callable[[], float]]] = deque()
        for (channel, provider), group in by_provider.items():
            try:
                adapter = self.adapter(channel, provider, cfg)
            except (KeyError, ValueError) as exc:  # a setting the adapter refuses: keep the messages, say why
                failure = SendResult(Outcome.RETRY, code="config", detail=str(exc)[:200])
                done.extend((job, failure) for job in group)
                continue
            name, rate = f"{channel}:{provider}", cfg.rate(channel)
            slots = self.limiter.reserve(name, len(group), rate)

            def reslot(name: str = name, rate: float = rate) -> float:
                return self.limiter.reserve(name, 1, rate)[0] if rate > 0 else time.time()

            calls.extend((adapter, job, slot, reslot) for job, slot in zip(group, slots, strict=True))
        # A task per thread that takes the calls in slot order, not a task (a Future, its lock and condition)
        # per call: the thread pool's own bookkeeping was a tenth of a worker's CPU (bench/README.md).
        futures = [self.pool.submit(_drain, calls, self.stopping) for _ in range(min(self.threads, len(calls)))]
        return done, futures, calls

    # --- recording --------------------------------------------------------------------------------

    def record(self, session: Session, results: Sequence[tuple[Job, SendResult]], now: datetime,
               cfg: ChannelConfig) -> None:
        """Write what each provider call came to (one transaction), hand over to fallbacks, pause channels."""
        updates: list[dict[str, Any]] = []
        fallbacks: list[OutboxMessage] = []
        pause: set[str] = set()
        current = self._current(session, [i for job, _ in results for i in job.ids])
        for job, result in results:
            if result.pause_channel:
                pause.add(job.channel)
            if result.outcome == Outcome.SENT and job.outgoing.wechat_kind == "mass":
                session.add(WechatMassJob(msg_id=result.provider_id or f"local-{job.ids[0]}",
                                          campaign_id=job.rows[0].campaign_id, recipients=len(job.rows), sent_at=now))
            for row in job.rows:
                status, holder = current.get(row.id, ("", None))
                if status == "sending" and holder != self.holder:
                    log.warning("message %s was taken over by %s while this worker sent it; its record stands", row.id,
                                holder)
                    continue
                change, falls = self._outcome(session, row, job, result, now, cfg)
                if status in ("delivered", "failed") and change["status"] in ("sent", "delivered"):
                    # A receipt came back before this worker recorded the send: it is the later news.
                    change["status"] = status
                    change.update(current_receipt(session, row.id))
                    falls = False
                updates.append(change)
                if falls:
                    fallbacks.append(row)
        session.flush()
        session.expunge_all()
        update_many(session.connection(), _OUTBOX, updates)
        self._fall_back(session, fallbacks, now)
        for channel in sorted(pause):
            self._pause(session, channel, results, now)

    def _current(self, session: Session, ids: Sequence[int]) -> dict[int, tuple[str, str | None]]:
        """Lock the rows about to be recorded and return their status and claimer now."""
        if not ids:
            return {}
        query = (select(OutboxMessage.id, OutboxMessage.status, OutboxMessage.claimed_by)
                 .where(self._among(OutboxMessage.id, ids)))
        if self.db.dialect == "postgresql":
            query = query.with_for_update()
        return {i: (status, holder) for i, status, holder in session.execute(query)}

    def _outcome(self, session: Session, row: OutboxMessage, job: Job, result: SendResult, now: datetime,
                 cfg: ChannelConfig) -> tuple[dict[str, Any], bool]:
        attempts = row.attempts + 1
        common: dict[str, Any] = {"attempts": attempts, "lease_until": None, "claimed_by": None, "hold_reason": None,
                                  "provider": job.provider, "recipient_masked": job.masked.get(row.id), "now": now}
        code, detail = result.code or None, result.detail or None
        if result.outcome == Outcome.SENT:
            status = "delivered" if result.delivered else "sent"
            return _row_update(row, status=status, due_at=now, provider_id=result.provider_id or None,
                               error_code=None, error=None, sent_at=now,
                               delivered_at=now if result.delivered else None, **common), False
        if row.investor_id is not None and job.caps.get(row.id):
            self._give_back(session, row.investor_id, job.caps[row.id])
        if result.outcome == Outcome.RETRY:
            policy = cfg.retry_policy(row.channel)
            if not policy.exhausted(attempts, now - row.created_at):
                delay = policy.delay(attempts, self.draw)
                if result.retry_after is not None:
                    delay = max(delay, min(result.retry_after, policy.longest))
                return _row_update(row, status="queued", due_at=now + timedelta(seconds=delay), error_code=code,
                                   error=detail, **common), False
            return _row_update(row, status="dead", due_at=now, error_code=code,
                               error=f"retries exhausted after {attempts} attempts: "
                                     f"{' '.join(x for x in (code, detail) if x)}"[:500],
                               **common), True
        if result.outcome == Outcome.UNREACHABLE and row.investor_id is not None:
            address = job.addresses.get(row.investor_id, "")
            if address:
                mark_unreachable(session=session, investor_id=row.investor_id, channel=row.channel, address=address,
                                 code=code or "", reason=detail or "", now=now, message_id=row.id)
            return _row_update(row, status="unreachable", due_at=now, error_code=code, error=detail, **common), True
        return _row_update(row, status="failed", due_at=now, error_code=code, error=detail, **common), True

    def _pause(self, session: Session, channel: str, results: Sequence[tuple[Job, SendResult]], now: datetime) -> None:
        """Stop a channel the provider refused as a whole (e.g. no balance left) and leave word for the admins."""
        key = f"{channel}_paused"
        setting = session.get(ChannelSetting, key)
        if setting is not None and setting.value == "true":
            return
        reason = next((r.code or r.detail for j, r in results if j.channel == channel and r.pause_channel), "")
        store_override(key, "true", session=session, now=now, by=None)
        audit("channel_settings.changed", session=session, target_type="channel_settings", actor="delivery",
              details={"changes": {key: ["false", "true"]}, "reason": f"the provider refused the channel: {reason}"})
        log.error("the %s channel is paused: the provider refused it as a whole (%s); messages wait as deferred "
                  "until an admin resumes it on the channel settings page", channel, reason)
        self._config = None


def current_receipt(session: Session, message_id: int) -> dict[str, Any]:
    """The receipt fields already on a message (a report can beat the worker's own record of the send)."""
    row = session.execute(select(OutboxMessage.delivered_at, OutboxMessage.error_code, OutboxMessage.error)
                          .where(OutboxMessage.id == message_id)).one()
    return {"delivered_at": row.delivered_at, "error_code": row.error_code, "error": row.error}


def _row_update(row: OutboxMessage, *, now: datetime, **values: Any) -> dict[str, Any]:
    """A full bulk-update row (update_many takes the same keys for every row)."""
    current = {
        "status": row.status, "hold_reason": row.hold_reason, "attempts": row.attempts, "due_at": row.due_at,
        "lease_until": row.lease_until, "claimed_by": row.claimed_by, "provider": row.provider,
        "provider_id": row.provider_id, "recipient_masked": row.recipient_masked, "error_code": row.error_code,
        "error": row.error, "sent_at": row.sent_at, "delivered_at": row.delivered_at,
    }
    current.update(values)
    current["updated_at"] = now
    current["id"] = row.id
    return current


Call = tuple[Adapter, Job, float, Callable[[], float]]
# Settled outcomes, the threads' futures, and the queue they take calls from (what is left in it was never made).
Sending = tuple[list[tuple[Job, SendResult]], list[Future[list[tuple[Job, SendResult]]]], deque[Call]]


def collect(sending: Sending) -> list[tuple[Job, SendResult]]:
    """Wait for the calls started by `Deliverer.submit` and return every outcome."""
    done, futures, _calls = sending
    return done + [outcome for f in futures for outcome in f.result()]


def unstarted(sending: Sending) -> list[Job]:
    """Return the jobs whose provider call was never made because the worker is stopping (after `collect`)."""
    return [job for _adapter, job, _slot, _reslot in sending[2]]


def _drain(calls: deque[Call], stop: threading.Event) -> list[tuple[Job, SendResult]]:
    """Make calls from the shared queue (in slot order; popleft is atomic) until none is left or the worker stops."""
    outcomes: list[tuple[Job, SendResult]] = []
    while not stop.is_set():
        try:
            call = calls.popleft()
        except IndexError:
            return outcomes
        outcome = _send_at(*call, stop)
        if outcome is None:  # stopping before the call was made: it stays in the queue, to be handed back
            calls.appendleft(call)
            return outcomes
        outcomes.append(outcome)
    return outcomes


def _send_at(adapter: Adapter, job: Job, slot: float, reslot: Callable[[], float],
             stop: threading.Event) -> tuple[Job, SendResult] | None:
    """Make the call at its rate-limit slot (None: the worker stopped first); one woken too late takes a new slot.

    Slots are spaced evenly, but a thread held up past its slot (a busy machine) would otherwise send
    together with the ones due after it, and the provider would see a burst above the rate.
    """
    while True:
        wait = slot - time.time()
        if wait > 0 and stop.wait(wait):
            return None
        if stop.is_set():
            return None
        if time.time() - slot <= LATE_SLOT:
            break
        slot = reslot()
    try:
        return job, adapter.send(job.outgoing)
    except Exception as exc:  # an adapter must not raise; if one does, the message is retried, not lost
        log.exception("adapter %s raised for message %s", job.provider, job.outgoing.message_id)
        return job, SendResult(Outcome.RETRY, code="adapter_error", detail=type(exc).__name__)


def release_holds(*, session: Session, now: datetime) -> int:
    """Make every deferred message due now, so it is checked against the settings in effect (start, settings change)."""
    result = session.execute(update(OutboxMessage).where(OutboxMessage.status == "deferred", OutboxMessage.due_at > now)
                             .values(due_at=now).execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


def run_delivery(app: Flask, stop: threading.Event) -> None:
    """Background worker: deliver due messages until stopped (several may run: claims never overlap)."""
    deliverer = Deliverer(app)
    idle = float(app.config["DELIVERY_IDLE_SECONDS"])
    with deliverer.db.session_scope(write=True) as session:
        released = release_holds(session=session, now=utcnow())
    if released:
        log.info("re-checking %d deferred messages against the settings in effect", released)
    try:
        deliverer.run(stop, idle)
    finally:
        deliverer.close()


