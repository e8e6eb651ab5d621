"""The manager's team view: every figure equals an independent plain-Python count over generated data."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from growth.crm import team
from growth.crm.models import CONNECTED_OUTCOMES, OUTCOMES, REASONS, CrmCall, CrmTask
from growth.investors.models import Investment
from tests.factories import make_investor, make_user

START = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)  # 2026-11-21 00:00 in Shanghai
END = START + timedelta(days=7)
NOW = END + timedelta(days=2)
WINDOW = timedelta(days=7)


def _generate(session, seed: int):  # type: ignore[no-untyped-def]
    """Make agents, investors, tasks, calls and investments at random around the period; return them as plain data."""
    rng = random.Random(seed)
    agents = [make_user(session, role="agent").id for _ in range(3)]
    investors = [make_investor(session).id for _ in range(30)]

    def when() -> datetime:
        return START - timedelta(days=4) + timedelta(minutes=rng.randrange(15 * 24 * 60))

    tasks, calls = [], []
    for k in range(90):
        created = when()
        status = rng.choice(["open", "open", "done", "cancelled"])
        closed = None if status == "open" else created + timedelta(hours=rng.randrange(1, 60))
        assignee = rng.choice([*agents, None])
        task = CrmTask(investor_id=rng.choice(investors), reason=rng.choice(REASONS[:4]), status=status,
                       assignee_id=assignee, due_at=created + timedelta(hours=rng.choice([6, 24, 200])),
                       created_at=created, closed_at=closed, closed_by=(assignee or agents[0]) if closed else None,
                       cause_key=f"gen:{k}")
        session.add(task)
        session.flush()
        tasks.append(task)
    for _ in range(120):
        task = rng.choice([*tasks, None])
        investor_id = task.investor_id if task else rng.choice(investors)
        call = CrmCall(task_id=task.id if task else None, investor_id=investor_id,
                       agent_id=rng.choice(agents), outcome=rng.choice(OUTCOMES), created_at=when())
        session.add(call)
        calls.append(call)
    for k in range(60):
        started = when() + timedelta(days=rng.choice([0, 2, 6]))
        session.add(Investment(investment_id=f"gen-{k}-{seed}", investor_id=rng.choice(investors), amount_fen=100_000,
                               started_at=started, status="active"))
    session.flush()
    plain_tasks = [(t.id, t.investor_id, t.reason, t.status, t.assignee_id, t.due_at, t.created_at, t.closed_at,
                    t.closed_by) for t in tasks]
    plain_calls = [(c.id, c.task_id, c.investor_id, c.agent_id, c.outcome, c.created_at) for c in calls]
    plain_investments = [(i.investor_id, i.started_at) for i in session.query(Investment)]
    return agents, plain_tasks, plain_calls, plain_investments


def _expected(agents, tasks, calls, investments):  # type: ignore[no-untyped-def]
    """Count every figure straight from the definitions in growth/crm/team.py's docstring."""
    def within(at, lo, hi):  # type: ignore[no-untyped-def]
        return lo <= at < hi

    reason_of = {t[0]: t[2] for t in tasks}

    def invested(investor, after):  # type: ignore[no-untyped-def]
        return any(i == investor and after < s <= after + WINDOW for i, s in investments)

    out: dict[int, dict[str, object]] = defaultdict(lambda: defaultdict(int))
    for _id, _inv, _reason, status, assignee, due, created, closed, closed_by in tasks:
        if within(created, START, END):
            out[assignee or 0]["created"] += 1
        if status != "open" and within(closed, START, END):
            out[closed_by]["closed"] += 1
        if status == "open" and due < NOW:
            out[assignee or 0]["overdue"] += 1
    first: dict[tuple[int, int], tuple] = {}
    for _call_id, task_id, investor, agent, outcome, at in sorted(calls, key=lambda c: (c[5], c[0])):
        if not within(at, START, END):
            continue
        out[agent]["calls"] += 1
        if outcome in CONNECTED_OUTCOMES:
            out[agent]["connected"] += 1
            first.setdefault((agent, investor), (task_id, at))
    contacts: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for (agent, investor), (task_id, at) in first.items():
        out[agent]["contacted"] += 1
        out[agent]["converted"] += invested(investor, at)
        if task_id is not None:
            contacts[agent][reason_of[task_id]] += 1
    control: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for _id, investor, reason, _status, _assignee, _due, created, _closed, _by in tasks:
        if not within(created, START, END):
            continue
        if any(c[2] == investor and created <= c[5] <= created + WINDOW for c in calls):
            continue
        control[reason][0] += 1
        control[reason][1] += invested(investor, created)
    for agent, by_reason in contacts.items():
        weights = {r: n for r, n in by_reason.items() if control[r][0]}
        if weights:
            out[agent]["control"] = sum(n * control[r][1] / control[r][0] for r, n in weights.items()) / sum(
                weights.values())
    return out, {r: tuple(v) for r, v in control.items() if v[0]}


def test_every_figure_of_the_team_view_equals_a_plain_count_over_generated_data(session, db_kind):
    for seed in (1, 2, 3):
        agents, tasks, calls, investments = _generate(session, seed)
        expected, control = _expected(agents, tasks, calls, investments)

        report = team.team_report(session=session, start=START, end=END, now=NOW)

        assert {r: (g.tasks, g.converted) for r, g in report.control.items()} == control
        by_agent = {row.agent_id: row for row in report.rows}
        assert set(agents) <= set(by_agent)
        for agent_id, row in by_agent.items():
            want = expected.get(agent_id, {})
            got = {k: getattr(row, k) for k in ("created", "closed", "overdue", "calls", "connected", "contacted",
                                                 "converted")}
            assert got == {k: want.get(k, 0) for k in got}, (seed, agent_id)
            if "control" in want:
                assert abs(row.control_rate - want["control"]) < 1e-9
            else:
                assert row.control_rate is None
        assert report.total.calls == sum(e.get("calls", 0) for e in expected.values())
        # The data exercise every figure: conversions on both sides, and an agent compared with a control.
        assert sum(e.get("converted", 0) for e in expected.values()) > 0 and any(c for _n, c in control.values())
        assert any("control" in e for e in expected.values())
        session.rollback()


def test_an_agent_whose_contact_converted_shows_the_rate_the_control_rate_and_the_difference(session, db_kind):
    agent = make_user(session, role="agent")
    called, quiet, other = (make_investor(session) for _ in range(3))
    at = START + timedelta(days=1)
    for k, investor in enumerate((called, quiet, other)):
        session.add(CrmTask(investor_id=investor.id, reason="maturing", status="open", assignee_id=agent.id,
                            due_at=at + timedelta(days=1), created_at=at, cause_key=f"m:{k}"))
    session.flush()
    task_id = session.query(CrmTask.id).filter_by(investor_id=called.id).scalar()
    session.add(CrmCall(task_id=task_id, investor_id=called.id, agent_id=agent.id, outcome="interested",
                        created_at=at + timedelta(hours=1)))
    session.add(CrmCall(task_id=task_id, investor_id=called.id, agent_id=agent.id, outcome="no_answer",
                        created_at=at + timedelta(minutes=30)))
    session.add(Investment(investment_id="i1", investor_id=called.id, started_at=at + timedelta(days=2)))
    session.add(Investment(investment_id="i2", investor_id=quiet.id, started_at=at + timedelta(days=3)))
    session.add(Investment(investment_id="i3", investor_id=other.id, started_at=at + timedelta(days=9)))  # too late
    session.flush()

    (row,) = [r for r in team.team_report(session=session, start=START, end=END, now=START).rows
              if r.agent_id == agent.id]

    assert (row.created, row.calls, row.connected, row.contacted, row.converted) == (3, 2, 1, 1, 1)
    assert row.contact_rate == 0.5 and row.conversion_rate == 1.0
    assert row.control_rate == 0.5 and row.lift == 0.5  # of quiet and other, one invested within 7 days


def test_a_period_with_nothing_in_it_is_empty(session, db_kind):
    make_user(session, role="agent")
    report = team.team_report(session=session, start=START, end=END, now=START)
    assert report.empty and all(r.created == r.calls == 0 for r in report.rows)
