"""The engine over both stores with injected time: windows, scores, bans, escalation, exemptions.

Every test runs three times: the in-memory store, a real Redis and a real Redis Cluster (`store_factory`).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from types import MappingProxyType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.moderation.metrics import LOGIN_ALARM, LOGIN_RATE, LoginRateAlarm
from shared.moderation.decisions import Event, SubjectExempt, Violation
from shared.moderation.engine import Engine
from shared.moderation.policy import BanPolicy, Limit, Limits, Policy
from shared.moderation.store import Store
from tests.moderation.conftest import fresh_account, fresh_ip, fresh_ipv6, fresh_user

T0 = 1_800_000_000_000  # an injected "now" (ms); each test moves it forward by hand
WINDOW = 1_000
BAN_MS = 10_000
SCORES = MappingProxyType(
    {
        "login": 1,
        "register": 1,
        "refresh": 1,
        "message": 1,
        "concurrent_message": 1,
        "reset_password": 1,
        "verify_email": 1,
        "non_browser": 2,
        "illegal_model": 3,
    }
)
EXEMPT = (ipaddress.ip_network("198.51.100.0/24"), ipaddress.ip_network("2001:db8:ee::/48"))


def policy(**bans: object) -> Policy:
    ban_policy = BanPolicy(
        **{
            "interval": 5,
            "violation_window_ms": 60_000,
            "duration_ms": BAN_MS,
            "escalation_window_ms": 100_000,
            "max_duration_ms": 35_000,
            **bans,
        }  # type: ignore[arg-type]
    )
    limits = Limits(
        login=Limit(3, WINDOW),
        register=Limit(2, WINDOW),
        refresh=Limit(3, WINDOW),
        message_ip=Limit(6, WINDOW),
        message_user=Limit(3, WINDOW),
        concurrent_messages=2,
        login_account=Limit(4, 60_000),
        login_device_max=6,
    )
    return Policy(limits=limits, scores=SCORES, bans=ban_policy, exempt=EXEMPT)


@pytest.fixture
def make_engine(store_factory: Callable[..., Store]) -> Callable[..., Engine]:
    def make(**bans: object) -> Engine:
        pol = policy(**bans)
        return Engine(store_factory(pol.bans), pol)

    return make


async def login(engine: Engine, ip: str, now: int, **extra: object) -> object:
    return await engine.event(Event("login", ip, **extra), "auth", now_ms=now)  # type: ignore[arg-type]


async def test_window_edges_are_exact(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    ip = fresh_ip()
    for i in range(3):
        decision = await engine.event(Event("login", ip), "auth", now_ms=T0 + i)
        assert decision.allowed and decision.remaining == 2 - i and decision.limit == 3
    blocked = await engine.event(Event("login", ip), "auth", now_ms=T0 + 500)
    assert not blocked.allowed and blocked.remaining == 0
    assert blocked.retry_after == 1  # the first attempt leaves the window at T0 + 1000
    still = await engine.event(Event("login", ip), "auth", now_ms=T0 + WINDOW - 1)
    assert not still.allowed
    again = await engine.event(Event("login", ip), "auth", now_ms=T0 + WINDOW)
    assert again.allowed and again.remaining == 0  # exactly one slot came free


async def test_refused_attempts_do_not_fill_the_window(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine(interval=1000)
    ip = fresh_ip()
    for i in range(10):
        await engine.event(Event("login", ip), "auth", now_ms=T0 + i)
    later = await engine.event(Event("login", ip), "auth", now_ms=T0 + WINDOW + 2)
    assert later.allowed  # only the three accepted attempts were in the window


async def test_scoring_reaches_the_ban_and_the_crossing_request_gets_it(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine()
    ip = fresh_ip()
    for i in range(3):
        assert (await engine.event(Event("login", ip), "auth", now_ms=T0 + i)).allowed
    scores = []
    for i in range(4):
        decision = await engine.event(Event("login", ip), "auth", now_ms=T0 + 10 + i)
        assert not decision.allowed and decision.ban is None
        scores.append(decision.score)
    assert scores == [1, 2, 3, 4]
    crossing = await engine.event(Event("login", ip), "auth", now_ms=T0 + 20)
    assert crossing.ban is not None and crossing.score == 5
    assert crossing.ban.subject == f"ip:{ip}"
    assert crossing.ban.expires_at_ms == T0 + 20 + BAN_MS
    assert crossing.retry_after == BAN_MS // 1000
    assert crossing.ban.automatic and crossing.ban.violation == "login"
    # While banned nothing is counted; after it ends the score starts from zero.
    during = await engine.event(Event("login", ip), "auth", now_ms=T0 + 30)
    assert during.ban is not None and during.score == 0
    after = await engine.event(Event("login", ip), "auth", now_ms=T0 + 20 + BAN_MS)
    assert after.allowed and after.ban is None and after.score == 0


async def test_ban_expiry_is_exact(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    ban = await engine.ban(f"user:{fresh_user()}", "spam", 15_000, "cli", now_ms=T0)
    user = ban.subject.removeprefix("user:")
    assert (await engine.check(None, user, now_ms=T0 + 14_999)).ban is not None
    assert (await engine.check(None, user, now_ms=T0 + 15_000)).ban is None


async def test_score_window_forgets_old_violations(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine(violation_window_ms=5_000)
    ip = fresh_ip()
    for i in range(4):
        await engine.violation(Violation("login", ip=ip), "auth", now_ms=T0 + i)
    decision = await engine.violation(Violation("login", ip=ip), "auth", now_ms=T0 + 5_000)
    assert decision.ban is None and decision.score == 4  # the first one (at T0) left the window
    decision = await engine.violation(Violation("login", ip=ip), "auth", now_ms=T0 + 5_000)
    assert decision.ban is not None and decision.score == 5


async def test_escalation_doubles_up_to_the_maximum_then_resets(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    ip = fresh_ip()
    now = T0
    durations = []
    for _ in range(4):
        decision = None
        for _ in range(3):
            decision = await engine.violation(Violation("illegal_model", ip=ip), "auth", now_ms=now)
        assert decision is not None and decision.ban is not None
        durations.append(decision.ban.expires_at_ms - now)
        now = decision.ban.expires_at_ms
    assert durations == [10_000, 20_000, 35_000, 35_000]  # x2, x2, capped at BAN_MAX_DURATION
    now += 100_001  # the escalation window has passed since the last ban
    for _ in range(2):
        decision = await engine.violation(Violation("illegal_model", ip=ip), "auth", now_ms=now)
    assert decision is not None and decision.ban is not None and decision.ban.expires_at_ms - now == 10_000


async def test_bans_off_keeps_scoring_and_resets_at_the_threshold(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine(duration_ms=0)
    ip = fresh_ip()
    scores = [
        (await engine.violation(Violation("login", ip=ip), "auth", now_ms=T0 + i)).score for i in range(7)
    ]
    assert scores == [1, 2, 3, 4, 5, 1, 2]
    assert (await engine.check(ip, None, now_ms=T0 + 10)).ban is None


async def test_exempt_addresses_are_never_limited_scored_or_banned(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine()
    for _ in range(20):
        decision = await engine.event(Event("login", "198.51.100.7"), "auth", now_ms=T0)
        assert decision.allowed and decision.score == 0
    decision = await engine.violation(Violation("illegal_model", ip="198.51.100.7"), "auth", now_ms=T0)
    assert decision.score == 0 and decision.ban is None
    for subject in ("ip:198.51.100.7", "ip:2001:db8:ee::1", "net:2001:db8:ee::/64"):
        with pytest.raises(SubjectExempt):
            await engine.ban(subject, "no", 1000, "cli", now_ms=T0)
    with pytest.raises(SubjectExempt):
        await engine.ban(fresh_account(), "no", 1000, "cli", now_ms=T0)


async def test_ipv6_counts_per_64(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    base = fresh_ipv6()
    net = ipaddress.IPv6Network(f"{base}/64", strict=False)
    hosts = [str(net.network_address + n) for n in (1, 2, 3, 4)]
    decisions = [await engine.event(Event("login", host), "auth", now_ms=T0) for host in hosts]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    # A manual ban of one exact address does not touch its neighbours.
    other = fresh_ipv6()
    await engine.ban(f"ip:{other}", "one host", 5000, "cli", now_ms=T0)
    neighbour = str(ipaddress.IPv6Address(other) + 1)
    assert (await engine.check(other, None, now_ms=T0 + 1)).ban is not None
    assert (await engine.check(neighbour, None, now_ms=T0 + 1)).ban is None


async def test_account_throttle_spares_the_owner_and_scores_nobody(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine()
    account = fresh_account()
    attackers = [fresh_ip() for _ in range(6)]
    for i, ip in enumerate(attackers):  # one failure per attacker address: no IP is over its own limit
        await engine.event(Event("login_failed", ip, account=account), "auth", now_ms=T0 + i)
    attacker = await engine.event(Event("login", fresh_ip(), account=account), "auth", now_ms=T0 + 10)
    assert not attacker.allowed and attacker.ban is None and attacker.score == 0
    assert attacker.limit == 4 and attacker.retry_after == 60  # until the oldest kept failure leaves
    for ip in attackers:
        assert (await engine.check(ip, None, now_ms=T0 + 11)).ban is None
    # The owner with a device cookie has a door of their own, with its own cap.
    owner_ip = fresh_ip()
    owner = await engine.event(
        Event("login", owner_ip, account=account, device_trusted=True), "auth", now_ms=T0 + 12
    )
    assert owner.allowed
    for i in range(6):
        await engine.event(
            Event("login_failed", owner_ip, account=account, device_trusted=True), "auth", now_ms=T0 + 20 + i
        )
    capped = await engine.event(
        Event("login", fresh_ip(), account=account, device_trusted=True), "auth", now_ms=T0 + 30
    )
    assert not capped.allowed and capped.limit == 6


async def test_account_throttle_never_scores_or_counts_the_address(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine()  # LOGIN_MAX 3, BAN_INTERVAL 5
    account = fresh_account()
    home = fresh_ip()
    for i in range(4):
        await engine.event(Event("login_failed", fresh_ip(), account=account), "auth", now_ms=T0 + i)
    # The owner retries from home far past LOGIN_MAX + BAN_INTERVAL: refused by the account, never scored.
    throttled = [await login(engine, home, T0 + 10 + i, account=account) for i in range(20)]
    assert all(not d.allowed and d.ban is None and d.score == 0 for d in throttled)  # type: ignore[attr-defined]
    assert (await engine.check(home, None, now_ms=T0 + 40)).ban is None
    # Those refusals did not fill the home address's window: another account logs in from there.
    assert (await login(engine, home, T0 + 41, account=fresh_account())).allowed  # type: ignore[attr-defined]
    # An address over its own limit (on accounts that are not throttled) is scored, then banned.
    flooder = fresh_ip()
    answers = [await login(engine, flooder, T0 + 50 + i, account=fresh_account()) for i in range(3 + 5)]
    assert [d.allowed for d in answers[:3]] == [True] * 3  # type: ignore[attr-defined]
    assert [d.score for d in answers[3:7]] == [1, 2, 3, 4]  # type: ignore[attr-defined]
    assert answers[-1].ban is not None  # type: ignore[attr-defined]


async def test_message_violation_by_a_user_scores_user_and_ip(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    ip, user = fresh_ip(), fresh_user()
    for i in range(3):
        assert (await engine.event(Event("message", ip, user_id=user), "auth", now_ms=T0 + i)).allowed
    over = await engine.event(Event("message", ip, user_id=user), "auth", now_ms=T0 + 5)
    assert not over.allowed and over.score == 1
    other_user = fresh_user()  # the IP was scored too: a different user from that IP shows its score
    seen = await engine.event(Event("message", ip, user_id=other_user), "auth", now_ms=T0 + 6)
    assert seen.allowed and seen.score == 1


async def test_concurrent_message_leases_and_releases(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    ip, user = fresh_ip(), fresh_user()

    async def send(release: bool, now: int) -> bool:
        decision = await engine.event(
            Event("concurrent_message", ip, user_id=user, release=release), "auth", now_ms=now
        )
        return decision.allowed

    assert await send(False, T0) and await send(False, T0 + 1)
    assert not await send(False, T0 + 2)
    assert await send(True, T0 + 3)
    assert await send(False, T0 + 4)
    assert await send(False, T0 + 60_001) is True  # unreleased leases free themselves after 60 s


async def test_caller_scores_are_capped_and_no_single_report_bans(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    ip, user = fresh_ip(), fresh_user()
    decision = await engine.violation(
        Violation("non_browser", ip=ip, user_id=user, score=1000), "auth", now_ms=T0
    )
    assert decision.score == 2 and decision.ban is None
    lower = await engine.violation(Violation("non_browser", ip=fresh_ip(), score=1), "auth", now_ms=T0)
    assert lower.score == 1


async def test_unban_resets_score_and_is_recorded(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    ip = fresh_ip()
    for _ in range(2):
        await engine.violation(Violation("illegal_model", ip=ip), "auth", now_ms=T0)
    assert (await engine.check(ip, None, now_ms=T0 + 1)).ban is not None
    lifted = await engine.unban(f"ip:{ip}", "false positive", "cli", now_ms=T0 + 2)
    assert lifted is not None and lifted.subject == f"ip:{ip}"
    assert await engine.unban(f"ip:{ip}", "again", "cli", now_ms=T0 + 3) is None
    assert (await engine.violation(Violation("login", ip=ip), "auth", now_ms=T0 + 4)).score == 1
    trail = await engine.audit_trail(f"ip:{ip}", None, 10)
    assert [(c.action, c.by, c.reason) for c in trail] == [
        ("ban", "auth", "automatic: violation score reached 5 (illegal_model)"),
        ("unban", "cli", "false positive"),
    ]


async def test_feed_resets_when_the_cursor_was_trimmed(store_factory: Callable[..., Store]) -> None:
    pol = policy()
    engine = Engine(store_factory(pol.bans, audit_max_len=3), pol)
    start = (await engine.changes(None, 10)).cursor
    first = await engine.ban(f"user:{fresh_user()}", "r", 5000, "cli", now_ms=T0)
    page = await engine.changes(start, 10)
    assert not page.reset and [e.change.subject for e in page.entries] == [first.subject]
    assert (await engine.changes(page.cursor, 10)).entries == ()
    for _ in range(4):
        await engine.ban(f"user:{fresh_user()}", "r", 5000, "cli", now_ms=T0)
    assert (await engine.changes(page.cursor, 10)).reset
    assert (await engine.changes("0000.1-1", 10)).reset  # another store generation


async def test_concurrent_events_are_counted_exactly(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    ip = fresh_ip()
    decisions = await asyncio.gather(
        *(engine.event(Event("login", ip), "auth", now_ms=T0) for _ in range(200))
    )
    allowed = sum(d.allowed for d in decisions)
    limited = sum(not d.allowed and d.ban is None for d in decisions)
    banned = sum(d.ban is not None for d in decisions)
    assert (allowed, limited, banned) == (3, 4, 193)
    trail = await engine.audit_trail(f"ip:{ip}", None, 10)
    assert [c.action for c in trail] == ["ban"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(st.integers(0, 4_000), st.integers(0, 3)), min_size=1, max_size=25))
async def test_score_is_the_sum_inside_the_window(
    store_factory: Callable[..., Store], steps: list[tuple[int, int]]
) -> None:
    pol = policy(interval=10_000, violation_window_ms=5_000)
    engine = Engine(store_factory(pol.bans), pol)
    ip = fresh_ip()
    now = T0
    history: list[tuple[int, int]] = []
    for gap, score in steps:
        now += gap
        decision = await engine.violation(Violation("illegal_model", ip=ip, score=score), "auth", now_ms=now)
        if score:
            history.append((now, score))
        expected = sum(s for at, s in history if at > now - 5_000)
        assert decision.score == expected


async def test_a_logged_in_users_per_ip_violation_scores_the_user_too(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine()
    ip, user = fresh_ip(), fresh_user()
    for i in range(3):
        await engine.event(Event("refresh", ip), "auth", now_ms=T0 + i)
    over = await engine.event(Event("refresh", ip, user_id=user), "auth", now_ms=T0 + 5)
    assert not over.allowed and over.score == 1
    elsewhere = await engine.violation(Violation("login", user_id=user, score=0), "auth", now_ms=T0 + 6)
    assert elsewhere.score == 1  # the user's own score, from another address


async def test_logins_spread_over_the_64s_of_one_48_are_limited_together(
    store_factory: Callable[..., Store],
) -> None:
    base = policy()
    limits = Limits(login=Limit(7, 60_000), login_net48=Limit(100, 60_000))
    pol = Policy(limits=limits, scores=SCORES, bans=base.bans, exempt=EXEMPT)
    engine = Engine(store_factory(pol.bans), pol)
    prefix = f"2001:db8:{0x4000 + int(fresh_ip().split('.')[-1]):x}"  # one /48 nobody else uses
    answers = []
    for n in range(350):  # 7 per /64 (LOGIN_MAX), over 50 /64s
        ip = f"{prefix}:{n % 50:x}::{n // 50 + 1:x}"
        answers.append(await engine.event(Event("login", ip), "auth", now_ms=T0 + n))
    allowed = [d.allowed for d in answers]
    assert allowed[:100] == [True] * 100 and not any(allowed[100:])
    assert all(d.ban is None and d.score == 0 for d in answers)  # a /48 is limited, never banned
    assert answers[-1].limit == 100
    # Another /48 and IPv4 clients are untouched.
    assert (await engine.event(Event("login", f"2001:db9:{prefix[-4:]}::1"), "auth", now_ms=T0 + 400)).allowed
    assert (await engine.event(Event("login", fresh_ip()), "auth", now_ms=T0 + 400)).allowed


def test_the_global_login_rate_alarm_rises_and_falls() -> None:
    now = [1000.0]
    alarm = LoginRateAlarm(threshold_per_minute=50, clock=lambda: now[0])
    for _ in range(50):
        alarm.observe()
    assert LOGIN_RATE._value.get() == 50 and LOGIN_ALARM._value.get() == 0
    alarm.observe()
    assert LOGIN_ALARM._value.get() == 1
    now[0] += 61  # a minute later the burst has left the window
    alarm.observe()
    assert LOGIN_RATE._value.get() == 1 and LOGIN_ALARM._value.get() == 0
