"""The engine reports through the metrics hook it is given, on both stores; none by default."""

from __future__ import annotations

from collections.abc import Callable

from shared.moderation.decisions import Event, Violation
from shared.moderation.engine import Engine
from shared.moderation.hooks import NO_METRICS, subject_kind
from shared.moderation.store import Store
from shared.moderation.store_memory import MemoryStore
from tests.moderation.conftest import fresh_ip, fresh_user
from tests.moderation.test_engine import T0, policy


class Recorded:
    """A hook that remembers what it was told."""

    def __init__(self) -> None:
        self.bans: list[tuple[str, bool]] = []
        self.unbans: list[str] = []
        self.logins = 0

    def ban(self, subject: str, automatic: bool) -> None:
        self.bans.append((subject, automatic))

    def unban(self, subject: str) -> None:
        self.unbans.append(subject)

    def login(self) -> None:
        self.logins += 1


async def test_the_engine_reports_bans_unbans_and_logins_to_its_hook(
    store_factory: Callable[..., Store],
) -> None:
    pol = policy()
    hook = Recorded()
    engine = Engine(store_factory(pol.bans), pol, hook)
    ip, user = fresh_ip(), fresh_user()
    for i in range(3):
        await engine.event(Event("login", fresh_ip()), "auth", now_ms=T0 + i)
    assert hook.logins == 3
    await engine.ban(f"user:{user}", "spam", 60_000, "cli", now_ms=T0)
    assert hook.bans == [(f"user:{user}", False)]
    await engine.unban(f"user:{user}", "appeal", "cli", now_ms=T0 + 1)
    assert hook.unbans == [f"user:{user}"]
    for i in range(10):  # illegal_model scores enough to ban automatically
        decision = await engine.violation(Violation("illegal_model", ip=ip), "auth", now_ms=T0 + 10 + i)
        if decision.ban is not None:
            break
    assert (f"ip:{ip}", True) in hook.bans


def test_without_a_hook_the_engine_reports_nowhere() -> None:
    pol = policy()
    assert Engine(MemoryStore(pol.bans), pol).metrics is NO_METRICS
    assert subject_kind("net:2001:db8::/48") == "net"
