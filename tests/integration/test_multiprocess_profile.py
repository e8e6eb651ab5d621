"""The PostgreSQL profile as processes: 2 gunicorn web workers + 2 `growth worker`s under an event and campaign load.

Everything runs for real on the test's PostgreSQL database: gunicorn with deploy/gunicorn.conf.py (2 workers),
two `growth worker` processes, the Aliyun SMS fake and a Standard Webhooks receiver in threads of this process
(the workers' providers point at them). A client sends a few thousand signed events over HTTP, shuffled, in
batches and single events, with retries of the same event ids (concurrent, in the same batch, later); staff
create and approve, through the API, a first-investment trigger campaign before the load and a scheduled
marketing campaign after it, due a few seconds later.

The kill lands inside the scheduled run for certain: the test holds a row lock on one investor, so the run's
selection transaction waits in its INSERT of campaign members with part of them written; then the holder of
the `campaign-runner` lease is SIGKILLed while more events are being ingested and processed, and restarted
with `--predecessor-pid` (as `growth serve` restarts its child). The lock is let go; the dead transaction
rolls back and the run is done again from its last committed position.

At the end: every distinct event stored and processed once (the cursors at the log's end; investors,
milestones and totals as the events say; duplicates answered as duplicates), the scheduled run recorded once,
every member of each campaign with one grant and one SMS, every outbox row sent, and the providers' side
agrees: the SMS fake got each message once (no phone twice for a campaign, none missing) and the webhook
receiver each reward's webhook once. No SMS or webhook is in flight when the worker dies (the trigger
campaign's are delivered before, the run's are not yet written), so exactly once is what spec §5 promises.

Found by this test, and mended: an investment that arrives before the investor's registration (spec:
order-free) fires the first-investment trigger at once, when delivery has no phone yet; such a message now waits
for the registration (`deferred`, hold `registration`) instead of ending `unreachable`. The events here are
shuffled whole, registrations included.
"""

from __future__ import annotations

import base64
import collections
import os
import random
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from flask import Flask
from sqlalchemy import func, select, text

from campaigns.models import Campaign, CampaignMember, CampaignRun
from channels.models import OutboxMessage
from growth.config import TestConfig
from growth.db import get_db
from growth.events.models import PlatformEvent, ProcessorCursor
from growth.investors.models import FundsMovement, Investment, Investor
from growth.locks import LeaderLease
from growth.rewards.models import Reward
from tests.events import event, investment, signed_headers
from tests.factories import make_token
from tests.fakes.aliyun_sms import FakeAliyunSms
from tests.fakes.webhook import FakeWebhookReceiver
from tests.integration.test_serve import wait_for
from tests.processes import Processes, product_env

pytestmark = pytest.mark.postgres_only

N = 400  # investors
TIMEOUT = 60.0  # per phase: a 2-core machine shared with other test runs
PLATFORM_SECRET = "whsec_" + base64.b64encode(b"multi-process-platform-secret!!!").decode()
TRIGGER_TEMPLATE, RUN_TEMPLATE = "SMS_2026120401", "SMS_2026120402"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Profile(Processes):
    """gunicorn and `growth worker` processes on one database; all stopped at the end, whatever happened."""

    def __init__(self, database_url: str, instance: Path, sms: FakeAliyunSms, hooks: FakeWebhookReceiver) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(product_env(
            GROWTH_DATABASE_URL=database_url, GROWTH_INSTANCE_PATH=str(instance), GROWTH_SECRET_KEY="m" * 48,
            GROWTH_WEBHOOK_SECRET=TestConfig.WEBHOOK_SECRET,
            GROWTH_BIND=f"127.0.0.1:{self.port}", GROWTH_WEB_WORKERS="2", GROWTH_WEB_THREADS="4",
            GROWTH_GRACEFUL_TIMEOUT="5",
            GROWTH_SMS_PROVIDER="aliyun", GROWTH_SMS_ENDPOINT=sms.endpoint, GROWTH_SMS_PROTOCOL="http",
            GROWTH_SMS_ACCESS_KEY_ID=sms.access_key_id, GROWTH_SMS_ACCESS_KEY_SECRET=sms.secret,
            GROWTH_SMS_SIGN_NAME="投资人增长", GROWTH_PLATFORM_WEBHOOK_URL=hooks.url,
            GROWTH_PLATFORM_WEBHOOK_SECRET=PLATFORM_SECRET,
            # The marketing SMS must go whenever the test runs (the default quiet period is the Beijing night);
            # no provider rate limit, so delivery keeps up with the load.
            GROWTH_QUIET_HOURS="off", GROWTH_SMS_RATE="0", GROWTH_WEBHOOK_RATE="0",
            GROWTH_DELIVERY_IDLE_SECONDS="0.2"), instance)
        self.web: subprocess.Popen[bytes] | None = None
        self.workers = 0

    def start_web(self) -> None:
        """Start gunicorn with the deployment profile's configuration."""
        self.web = self.spawn("gunicorn", ["gunicorn", "-c", "deploy/gunicorn.conf.py", "wsgi:app"])

    def start_worker(self, *args: str) -> subprocess.Popen[bytes]:
        """Start one more `growth worker`."""
        self.workers += 1
        return self.spawn(f"worker-{self.workers - 1}", ["growth.cli", "worker", *args])

    def web_up(self) -> bool:
        assert self.web is not None and self.web.poll() is None, self.output()
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False



@pytest.fixture(autouse=True)
def listen_backlog(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the fakes queue as many connections as 2 workers' 16 sending threads open (the stdlib listens with 5;
    a connection refused when that overflows is a retry, up to 30 s later, and the phases' waits get long)."""
    monkeypatch.setattr(ThreadingHTTPServer, "request_queue_size", 128)


@pytest.fixture
def sms() -> Iterator[FakeAliyunSms]:
    server = FakeAliyunSms().start()
    yield server
    server.stop()


@pytest.fixture
def hooks() -> Iterator[FakeWebhookReceiver]:
    receiver = FakeWebhookReceiver(PLATFORM_SECRET).start()
    yield receiver
    receiver.stop()


@pytest.fixture
def profile(database_url: str, tmp_path: Path, sms: FakeAliyunSms, hooks: FakeWebhookReceiver) -> Iterator[Profile]:
    running = Profile(database_url, tmp_path / "profile", sms, hooks)
    running.instance.mkdir()
    try:
        yield running
    finally:
        running.stop()  # before the fixture truncates the tables the processes hold locks on


# --- the client ----------------------------------------------------------------------------------


@dataclass
class Sent:
    """What the client sent and what the server answered, summed."""

    events: int = 0  # event objects sent, duplicates included
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Any] = field(default_factory=list)
    distinct: set[str] = field(default_factory=set)


def _post(url: str, payload: dict[str, Any]) -> dict[str, Any]:
    body = orjson.dumps(payload)
    request = urllib.request.Request(url + "/api/v1/events", data=body, headers=signed_headers(body), method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status in (200, 202), response.read()[:500]
        return dict(orjson.loads(response.read()))


def send(url: str, requests: list[dict[str, Any]], sent: Sent) -> None:
    """POST the request bodies over HTTP from 4 client threads (both web workers serve at once); tally the answers."""
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda payload: _post(url, payload), requests))
    for payload, answer in zip(requests, answers, strict=True):
        events = payload.get("events", [payload])
        sent.events += len(events)
        sent.distinct.update(e["id"] for e in events)
        sent.accepted += answer["accepted"]
        sent.duplicates += answer["duplicates"]
        sent.rejected += answer["rejected"]


def with_retries(events: list[dict[str, Any]], rng: random.Random, *, batch: int, singles: int) -> list[dict[str, Any]]:
    """Cut events into single-event bodies and batches, and add the platform's retries of the same ids.

    A batch sent twice in a row (the two go at once from different client threads), a batch carrying
    events of an earlier one, a batch holding some of its own events twice, single events sent again.
    """
    requests: list[dict[str, Any]] = list(events[:singles])
    batches = [events[i:i + batch] for i in range(singles, len(events), batch)]
    batches[1] = batches[1] + batches[0][:25]
    batches[-1] = batches[-1] + batches[-1][:10]
    requests += [{"events": b} for b in batches]
    requests.insert(len(requests) - 2, {"events": batches[-2]})  # a retry, concurrent with the original
    requests += rng.sample(events[:singles], 15)  # single events again, a while after the first time
    return requests


# --- what the events say -------------------------------------------------------------------------


def uid(i: int) -> str:
    return f"u_mp{i:04d}"


def phone(i: int) -> str:
    return f"+86138{i:08d}"


@dataclass
class Expected:
    """Per investor: the milestones and totals the events sent so far imply."""

    milestones: dict[str, dict[str, datetime | None]] = field(default_factory=dict)
    investments: dict[str, list[int]] = field(default_factory=lambda: collections.defaultdict(list))
    deposits: dict[str, list[int]] = field(default_factory=lambda: collections.defaultdict(list))


def first_wave(base: datetime, invested_at: datetime, expected: Expected) -> list[dict[str, Any]]:
    """Registration (phone, name, half with a channel code), SMS consent, KYC, card, a deposit; 2 in 3 invest."""
    events: list[dict[str, Any]] = []
    for i in range(N):
        u, registered = uid(i), base + timedelta(seconds=i)
        data = {"channel_code": "mp_sem"} if i % 2 else {}
        events += [
            event("user.registered", u, registered, data, event_id=f"evt_mp_{u}_reg", phone=phone(i),
                  name=f"多进程{i}"),
            event("user.consent_changed", u, registered + timedelta(seconds=10), {"channel": "sms", "granted": True},
                  event_id=f"evt_mp_{u}_consent"),
            event("user.kyc_verified", u, registered + timedelta(seconds=60), event_id=f"evt_mp_{u}_kyc"),
            event("user.card_bound", u, registered + timedelta(seconds=120), event_id=f"evt_mp_{u}_card"),
            event("funds.deposited", u, registered + timedelta(seconds=180),
                  {"deposit_id": f"d_{u}_1", "amount": "5000.00"}, event_id=f"evt_mp_{u}_dep1"),
        ]
        expected.milestones[u] = {"registered_at": registered, "kyc_verified_at": registered + timedelta(seconds=60),
                                  "card_bound_at": registered + timedelta(seconds=120),
                                  "first_deposit_at": registered + timedelta(seconds=180),
                                  "first_investment_at": None, "repeat_investment_at": None}
        expected.deposits[u].append(500_000)
        if i % 3:
            fen = 100_000 + i * 100
            events.append(investment(u, invested_at, f"inv_{u}_1", amount=f"{fen // 100}.00",
                                     event_id=f"evt_mp_{u}_inv1"))
            expected.milestones[u]["first_investment_at"] = invested_at
            expected.investments[u].append(fen)
    return events


def second_wave(users: list[str], base: datetime, again_at: datetime, expected: Expected) -> list[dict[str, Any]]:
    """A second deposit for each, a second investment (repeat_investment) for those who invested."""
    events: list[dict[str, Any]] = []
    for u in users:
        i = int(u[4:])
        events.append(event("funds.deposited", u, base + timedelta(seconds=i + 240),
                            {"deposit_id": f"d_{u}_2", "amount": "2000.00"}, event_id=f"evt_mp_{u}_dep2"))
        expected.deposits[u].append(200_000)
        if expected.investments[u]:
            events.append(investment(u, again_at, f"inv_{u}_2", amount="3000.00", event_id=f"evt_mp_{u}_inv2"))
            expected.milestones[u]["repeat_investment_at"] = again_at
            expected.investments[u].append(300_000)
    return events


# --- campaigns through the API -------------------------------------------------------------------


def api(url: str, token: str, path: str, document: dict[str, Any] | None = None) -> dict[str, Any]:
    body = orjson.dumps(document) if document is not None else b""
    request = urllib.request.Request(url + path, data=body, method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return dict(orjson.loads(response.read()))
    except urllib.error.HTTPError as err:
        raise AssertionError(f"{path}: {err.code} {err.read()[:1000]!r}") from None


def approved(url: str, tokens: dict[str, str], document: dict[str, Any]) -> int:
    """Create a campaign as a marketer, submit it, approve it as an approver; return its id."""
    cid = int(api(url, tokens["marketer"], "/api/v1/campaigns", document)["id"])
    api(url, tokens["marketer"], f"/api/v1/campaigns/{cid}/submit")
    status = api(url, tokens["approver"], f"/api/v1/campaigns/{cid}/approve")["status"]
    assert status in ("active", "scheduled"), status
    return cid


TRIGGER_DOC: dict[str, Any] = {
    "name": "首投奖励（多进程）", "type": "new_user", "class": "service", "trigger": {"on": "first_investment"},
    "rewards": [{"kind": "cash", "amount": "5.00"}], "budget": {"max_grants": N + 100},
    "messages": [{"channel": "sms", "template_code": TRIGGER_TEMPLATE,
                  "params": {"name": "{{ investor.name }}", "amount": "{{ reward.amount }}"},
                  "text": "{{ investor.name }}您好，首投奖励{{ reward.amount }}元现金已到账。"}],
}


def run_doc(at: datetime) -> dict[str, Any]:
    return {"name": "年终回馈（多进程）", "type": "broadcast", "class": "marketing", "schedule": {"at": at.isoformat()},
            "rewards": [{"kind": "cash", "amount": "10.00"}], "budget": {"max_grants": N + 100},
            "messages": [{"channel": "sms", "template_code": RUN_TEMPLATE, "params": {"name": "{{ investor.name }}"},
                          "text": "{{ investor.name }}您好，10元现金红包已到账。回T退订"}]}


# --- reading the database ------------------------------------------------------------------------


def progress(app: Flask) -> dict[str, Any]:
    """The counts the waits look at (and a failure's note shows)."""
    with get_db(app).session_scope() as s:
        cursors = dict(s.execute(select(ProcessorCursor.name, ProcessorCursor.position)).all())
        return {
            "events": s.scalar(select(func.count()).select_from(PlatformEvent)),
            "last_seq": s.scalar(select(func.max(PlatformEvent.seq))) or 0,
            "processed": cursors.get("projections", 0), "triggers": cursors.get("campaign-triggers", 0),
            "investors": s.scalar(select(func.count()).select_from(Investor)),
            "members": dict(s.execute(select(CampaignMember.campaign_id, func.count())
                                      .group_by(CampaignMember.campaign_id)).all()),
            "pending": s.scalar(select(func.count()).select_from(CampaignMember)
                                .where(CampaignMember.status == "pending")),
            "outbox": dict(s.execute(select(OutboxMessage.status, func.count())
                                     .group_by(OutboxMessage.status)).all()),
            "runs": dict(s.execute(select(CampaignRun.status, func.count()).group_by(CampaignRun.status)).all()),
            "campaigns": dict(s.execute(select(Campaign.id, Campaign.status)).all()),
        }


def lease_pid(app: Flask, name: str) -> int | None:
    """Return the process id holding a lease (holder ids are host:pid:random), if one holds it now."""
    with get_db(app).session_scope() as s:
        lease = s.get(LeaderLease, name)
        if lease is None or lease.expires_at.astimezone(UTC) <= datetime.now(UTC):
            return None
        return int(lease.holder.split(":")[1])


def members_waiting_on_a_lock(app: Flask) -> int:
    """Count the sessions whose INSERT of campaign members waits for a lock (the run, on the test's member row)."""
    with get_db(app).engine.connect() as conn:
        return int(conn.scalar(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
            "AND query ILIKE 'INSERT INTO campaign_members%'")) or 0)


def settled(app: Flask, profile: Profile, campaigns: dict[int, int], messages: int) -> bool:
    """Whether the log is processed, every campaign has its members fulfilled and every message is sent."""
    p = progress(app)
    profile.note = f"so far: {p}"
    return (p["processed"] == p["last_seq"] == p["triggers"] and not p["pending"]
            and all(p["members"].get(cid, 0) == n for cid, n in campaigns.items())
            and sum(p["outbox"].values()) == messages and set(p["outbox"]) <= {"sent", "delivered"})


def test_the_profile_under_load_processes_every_event_once_and_sends_every_message_once_though_a_worker_dies_mid_run(
        app: Flask, profile: Profile, sms: FakeAliyunSms, hooks: FakeWebhookReceiver) -> None:
    started = time.monotonic()
    phases: dict[str, float] = {}  # seconds from the start at the end of each phase (shown with -rP)
    db = get_db(app)
    with db.engine.begin() as conn:  # the job store of an earlier test's schedulers
        conn.execute(text("DROP TABLE IF EXISTS scheduler_jobs"))
    with db.session_scope(write=True) as s:
        tokens = {role: make_token(s, role=role) for role in ("marketer", "approver")}
    profile.start_web()
    first, second = profile.start_worker(), profile.start_worker()
    wait_for(profile.web_up, TIMEOUT, "gunicorn to answer", profile)  # type: ignore[arg-type]
    phases["gunicorn up"] = time.monotonic() - started

    # 1. A trigger campaign is live; the first wave of events comes in, shuffled (order-free), with retries.
    trigger_id = approved(profile.url, tokens, TRIGGER_DOC)
    rng = random.Random(13)
    now = datetime.now(UTC).replace(microsecond=0)
    base, invested_at = now - timedelta(hours=2), now + timedelta(seconds=2)  # investments after the approval
    expected, sent = Expected(), Sent()
    wave = first_wave(base, invested_at, expected)
    investors = sorted(u for u in expected.milestones if expected.investments[u])
    # Wholly shuffled: an investment may come before its registration (a triggered SMS then waits for the phone).
    rng.shuffle(wave)
    send(profile.url, with_retries(wave, rng, batch=250, singles=60), sent)
    phases["first wave sent"] = time.monotonic() - started
    wait_for(lambda: settled(app, profile, {trigger_id: len(investors)}, 2 * len(investors)), TIMEOUT,
             "the first wave processed and the trigger campaign's SMS and webhooks sent", profile)
    assert len(sms.sent) == len(investors) and len(hooks.deliveries) == len(investors)  # nothing in flight
    phases["first wave settled"] = time.monotonic() - started

    # 2. The test holds one investor's entry into the run (its member row, not committed): the run's INSERT of
    #    the chunk's members waits there for the test's transaction, half written.
    with db.session_scope() as s:
        locked_id, locked_user = s.execute(select(Investor.id, Investor.platform_user_id).order_by(Investor.id)
                                           .offset(N // 2).limit(1)).one()
    lock = db.engine.connect()
    try:
        held = lock.begin()
        run_id = approved(profile.url, tokens, run_doc(datetime.now(UTC) + timedelta(seconds=3)))
        lock.execute(text(
            "INSERT INTO campaign_members (campaign_id, investor_id, entry_key, cause, holdout, entered_at, status, "
            "rewards_granted, due_at, created_at) VALUES (:c, :i, 'once', 'test', false, now(), 'pending', 0, now(), "
            "now())"), {"c": run_id, "i": locked_id})
        # campaigns-sync picks the campaign up within 15 s, then the run is due
        wait_for(lambda: members_waiting_on_a_lock(app), TIMEOUT, "the run to wait for the locked investor", profile)
        phases["run waiting on the lock"] = time.monotonic() - started
        victim = lease_pid(app, "campaign-runner")
        assert victim in (first.pid, second.pid), (victim, first.pid, second.pid)

        # 3. More events arrive and are being processed when the run's worker dies; it is restarted.
        others = [u for u in sorted(expected.milestones) if u != locked_user]
        again_at = invested_at + timedelta(seconds=30)
        later = second_wave(others, base, again_at, expected)
        half = len(later) // 2
        send(profile.url, with_retries(later[:half], rng, batch=200, singles=20), sent)
        at_kill = progress(app)
        os.kill(victim, signal.SIGKILL)
        killed = first if first.pid == victim else second
        killed.wait(10)
        phases["killed"] = time.monotonic() - started
        profile.start_worker("--predecessor-pid", str(victim))  # as `growth serve` restarts its dead child
        held.rollback()  # the dead session's INSERT ends; its transaction rolls back
    finally:
        lock.close()
    send(profile.url, with_retries(later[half:], rng, batch=200, singles=20) + later[:10], sent)

    # 4. Everything settles: the run done again, every message sent once.
    wait_for(lambda: settled(app, profile, {trigger_id: len(investors), run_id: N}, 2 * (len(investors) + N)),
             TIMEOUT, "the run redone after the kill and every message sent", profile)
    phases["settled"] = time.monotonic() - started
    wait_for(lambda: progress(app)["campaigns"].get(run_id) == "finished", TIMEOUT, "the run's campaign to finish",
             profile)
    time.sleep(2)  # anything made or sent twice would show now
    final = progress(app)
    with db.session_scope() as s:
        final["attempts"] = s.execute(select(OutboxMessage.channel, OutboxMessage.attempts, OutboxMessage.error_code,
                                             func.count()).group_by(OutboxMessage.channel, OutboxMessage.attempts,
                                                                    OutboxMessage.error_code)).all()
    timings = ", ".join(f"{name} {at:.1f} s" for name, at in phases.items())
    print(f"\nat the kill: {at_kill}\nfinal: {final}\n{timings}; in all {time.monotonic() - started:.1f} s")

    # Events: each distinct one accepted once and stored once; the retries answered as duplicates.
    assert sent.rejected == []
    assert sent.accepted == len(sent.distinct) == final["events"]
    assert sent.duplicates == sent.events - len(sent.distinct) > 0
    assert final["processed"] == final["triggers"] == final["last_seq"]  # every one processed, behind no one
    with db.session_scope() as s:
        stored = set(s.scalars(select(PlatformEvent.event_id)))
        rows = s.execute(select(Investor)).scalars().all()
        columns = ("registered_at", "kyc_verified_at", "card_bound_at", "first_deposit_at", "first_investment_at",
                   "repeat_investment_at")
        got = {r.platform_user_id: ({c: getattr(r, c) and getattr(r, c).astimezone(UTC) for c in columns},
                                    r.investment_count, r.investment_total_fen, r.holdings_fen, r.deposit_total_fen,
                                    r.phone) for r in rows}
        investments = sorted(s.scalars(select(Investment.investment_id)))
        deposits = sorted(s.scalars(select(FundsMovement.external_id).where(FundsMovement.kind == "deposit")))
    assert stored == sent.distinct
    assert investments == sorted(f"inv_{u}_{n + 1}" for u, fen in expected.investments.items() for n in range(len(fen)))
    assert deposits == sorted(f"d_{u}_{n + 1}" for u, fen in expected.deposits.items() for n in range(len(fen)))
    want = {u: (m, len(expected.investments[u]), sum(expected.investments[u]), sum(expected.investments[u]),
                sum(expected.deposits[u]), phone(int(u[4:]))) for u, m in expected.milestones.items()}
    assert got == want

    # Campaigns: the run recorded once; each member of each campaign once, with one grant and one SMS.
    with db.session_scope() as s:
        runs = s.execute(select(CampaignRun.campaign_id, CampaignRun.status)).all()
        members = s.execute(select(CampaignMember.campaign_id, Investor.platform_user_id, CampaignMember.status,
                                   CampaignMember.rewards_granted)
                            .join(Investor, Investor.id == CampaignMember.investor_id)).all()
        rewards = s.execute(select(Reward.id, Reward.campaign_id, Investor.platform_user_id)
                            .join(Investor, Investor.id == Reward.investor_id)).all()
        outbox = s.execute(select(OutboxMessage.id, OutboxMessage.channel, OutboxMessage.campaign_id,
                                  OutboxMessage.user_id, OutboxMessage.status)).all()
    assert [tuple(r) for r in runs] == [(run_id, "selected")]
    for cid, audience in ((trigger_id, investors), (run_id, sorted(expected.milestones))):
        assert sorted(u for c, u, status, granted in members if c == cid and status == "done" and granted == 1
                      ) == audience, cid
        assert sorted(u for _id, c, u in rewards if c == cid) == audience, cid
        assert sorted(u for _id, channel, c, u, _s in outbox if c == cid and channel == "sms") == audience, cid
    assert len(members) == len(investors) + N and len(rewards) == len(investors) + N
    assert {status for *_rest, status in outbox} <= {"sent", "delivered"}
    assert collections.Counter(channel for _id, channel, *_rest in outbox) == {"sms": len(rewards),
                                                                               "webhook": len(rewards)}

    # The providers' side: each SMS arrived once (by our message id, and no phone twice for a campaign), none
    # missing; each reward's webhook arrived once, signed.
    assert collections.Counter(p["OutId"] for p in sms.sent) == {str(i): 1 for i, channel, *_ in outbox
                                                                 if channel == "sms"}
    for template, audience in ((TRIGGER_TEMPLATE, investors), (RUN_TEMPLATE, sorted(expected.milestones))):
        phones = collections.Counter(p["PhoneNumbers"] for p in sms.sent if p["TemplateCode"] == template)
        assert phones == {phone(int(u[4:]))[3:]: 1 for u in audience}, template
    assert all(d.verified is not None for d in hooks.deliveries)
    assert collections.Counter(d.headers["webhook-id"] for d in hooks.deliveries) == {
        str(i): 1 for i, channel, *_ in outbox if channel == "webhook"}
    assert sorted(d.verified["data"]["id"] for d in hooks.deliveries) == sorted(f"rw_{i}" for i, *_ in rewards)
