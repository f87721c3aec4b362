"""One event in, one decision out: which windows it counts in, what it scores, who is banned.

The engine knows the policy and nothing of HTTP or of any particular store. It
turns an event into one `SubjectOp` per subject, so the store can run them in
one round trip, and needs a second one only when a message or concurrency
violation committed by a logged-in user must also score the other subject, or
when a login is refused (it is then taken back out of every window and scored
only on the subject whose own limit refused it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import structlog

from shared.logging import audit
from shared.moderation.decisions import (
    Decision,
    Event,
    SubjectExempt,
    Violation,
    effective_kind,
    seconds_until,
)
from shared.moderation.hooks import NO_METRICS, EngineMetrics
from shared.moderation.policy import (
    ALWAYS_VIOLATION,
    CONCURRENT_LEASE_MS,
    Limit,
    Policy,
)
from shared.moderation.store import (
    BanPage,
    BanState,
    Change,
    FeedPage,
    Store,
    SubjectOp,
    SubjectResult,
    WindowMode,
    WindowOp,
    change_for,
)
from shared.moderation.subjects import ClientAddress, client_address, is_exempt, user_subject

log = structlog.get_logger("authgate.moderation")
SCORING_MODES = ("hit", "lease")  # exceeding these is a violation; `check`/`record` windows never score


@dataclass
class _Plan:
    ops: list[SubjectOp]
    ip_subject: str | None
    user: str | None
    limit: int  # reported when no window counted the event (an exempt address)
    login_score: int = 0  # a login refused by the address's own limit scores it after the fact


class Engine:
    def __init__(self, store: Store, policy: Policy, metrics: EngineMetrics = NO_METRICS) -> None:
        self.store = store
        self.policy = policy
        self.metrics = metrics

    # Planning ------------------------------------------------------------------------------

    def _reason(self, violation: str) -> str:
        return f"automatic: violation score reached {self.policy.bans.interval} ({violation})"

    def _op(
        self,
        subject: str,
        actor: str,
        violation: str,
        windows: tuple[WindowOp, ...] = (),
        score_always: int = 0,
        score_on_exceed: int = 0,
        check_ban: bool = True,
    ) -> SubjectOp:
        return SubjectOp(
            subject=subject,
            check_ban=check_ban,
            windows=windows,
            score_always=score_always,
            score_on_exceed=score_on_exceed,
            violation=violation,
            ban_reason=self._reason(violation),
            actor=actor,
        )

    def _plan(self, event: Event, actor: str) -> _Plan:
        limits = self.policy.limits
        kind = effective_kind(event)
        client = client_address(event.ip, self.policy.exempt)
        user = user_subject(event.user_id) if event.user_id is not None else None
        score = self.policy.score(kind)
        ops: list[SubjectOp] = []
        ip_windows: tuple[WindowOp, ...] = ()
        user_windows: tuple[WindowOp, ...] = ()
        ip_score_always = user_score_always = 0
        check_ip_ban = True
        per_ip: dict[str, Limit] = {
            "login": limits.login,
            "register": limits.register,
            "refresh": limits.refresh,
            "logout": limits.logout,
            "reset_password": limits.reset_password,
            "verify_email": limits.verify_email,
            "reset_password_submission": limits.reset_password_submission,
            "verify_email_submission": limits.verify_email_submission,
            "two_factor_temp": limits.two_factor_temp,
        }
        reported = 0
        if kind in per_ip:
            limit = per_ip[kind]
            ip_windows = (WindowOp(kind, "hit", limit.max, limit.window_ms),)
            reported = limit.max
            if kind == "login" and event.account is not None:
                ops.append(self._account_op(event, actor, check=True))
            if kind == "login" and client.net48 is not None and not client.exempt:
                ops.append(self._net48_op(client.net48, actor))
            if kind == "two_factor_temp" and event.account is not None:
                ops.append(self._two_factor_account_op(event.account, actor))
        elif kind == "login_failed":
            check_ip_ban = False
            if event.account is not None:
                ops.append(self._account_op(event, actor, check=False))
            reported = self._account_limit(event).max
        elif kind == "message":
            if limits.message_ip is not None:
                ip_windows = (
                    WindowOp("message_ip", "hit", limits.message_ip.max, limits.message_ip.window_ms),
                )
                reported = limits.message_ip.max
            if user is not None and limits.message_user is not None:
                user_windows = (
                    WindowOp("message_user", "hit", limits.message_user.max, limits.message_user.window_ms),
                )
        elif kind == "concurrent_message":
            if user is not None and limits.concurrent_messages is not None:
                mode: WindowMode = "release" if event.release else "lease"
                user_windows = (
                    WindowOp("concurrent", mode, limits.concurrent_messages, CONCURRENT_LEASE_MS),
                )
                reported = limits.concurrent_messages
        elif kind in ALWAYS_VIOLATION:
            ip_score_always = user_score_always = score
        if not client.bannable:  # the shared unknown client: limited, never scored, never banned
            ip_score_always = 0
        ip_on_exceed = score if client.bannable else 0
        login_score = 0
        if kind == "login":  # scored only once the other subjects' answers are known
            ip_on_exceed, login_score = 0, ip_on_exceed
        if not client.exempt:
            ops.extend(
                self._ip_ops(client, actor, kind, ip_windows, ip_score_always, ip_on_exceed, check_ip_ban)
            )
        if user is not None:
            ops.append(self._op(user, actor, kind, user_windows, user_score_always, score))
        return _Plan(ops, None if client.exempt else client.counted, user, reported, login_score)

    def _two_factor_account_op(self, subject: str, actor: str) -> SubjectOp:
        """The login's second step per account too (many IPs, one user): limited, never scored."""
        limit = self.policy.limits.two_factor_temp
        window = WindowOp("two_factor_temp", "hit", limit.max, limit.window_ms)
        return SubjectOp(subject=subject, check_ban=False, windows=(window,), actor=actor)

    def _net48_op(self, subject: str, actor: str) -> SubjectOp:
        """All logins of one IPv6 /48 together: spreading over its /64s buys nothing. Never scored."""
        limit = self.policy.limits.login_net48
        window = WindowOp("login48", "hit", limit.max, limit.window_ms)
        return SubjectOp(subject=subject, check_ban=False, windows=(window,), actor=actor)

    def _ip_ops(
        self,
        client: ClientAddress,
        actor: str,
        kind: str,
        windows: tuple[WindowOp, ...],
        score_always: int,
        score_on_exceed: int,
        check_ban: bool,
    ) -> list[SubjectOp]:
        if not (check_ban or windows or score_always):
            return []
        ops = [self._op(client.counted, actor, kind, windows, score_always, score_on_exceed, check_ban)]
        if check_ban:
            ops.extend(self._op(subject, actor, kind) for subject in client.ban_only)
        return ops

    def _account_limit(self, event: Event) -> Limit:
        limits = self.policy.limits
        if event.device_trusted:
            return Limit(limits.login_device_max, limits.login_account.window_ms)
        return limits.login_account

    def _account_op(self, event: Event, actor: str, check: bool) -> SubjectOp:
        """The per-account failure throttle: never scored, never banned (it is not the attacker)."""
        assert event.account is not None
        limit = self._account_limit(event)
        name = "fail_device" if event.device_trusted else "fail"
        window = WindowOp(name, "check" if check else "record", limit.max, limit.window_ms)
        return SubjectOp(subject=event.account, check_ban=False, windows=(window,), actor=actor)

    # Events -------------------------------------------------------------------------------

    async def event(self, event: Event, actor: str, now_ms: int | None = None, once: str = "") -> Decision:
        """Count `event` and decide.

        `once` (from the caller's idempotency key) marks every op of every round trip, so a
        retried event counts nothing again and gets its first answer back from each subject's slot.
        """
        plan = self._plan(event, actor)
        if once:
            plan.ops = _marked(plan.ops, once, "e")
        results = await self.store.apply(plan.ops, now_ms)
        if effective_kind(event) == "login":
            self.metrics.login()
            results += await self._settle_login(plan, results, actor, once)
        results += await self._cross_score(event, plan, results, actor, now_ms, once)
        await self._announce(results)
        return self._decide(effective_kind(event), plan, results, now_ms)

    async def _cross_score(
        self,
        event: Event,
        plan: _Plan,
        results: list[SubjectResult],
        actor: str,
        now_ms: int | None,
        once: str = "",
    ) -> list[SubjectResult]:
        """A logged-in user's violation scores the user and the IP, whichever window it exceeded.

        Each subject's script can only score its own subject, so this is the one case that
        takes a second round trip (a refusal, never the common path).
        """
        if plan.user is None:
            return []
        kind = effective_kind(event)
        score = self.policy.score(kind)
        exceeded = {
            result.subject
            for op, result in zip(plan.ops, results, strict=True)
            if result.ban is None
            and any(
                w.mode in SCORING_MODES and r.exceeded
                for w, r in zip(op.windows, result.windows, strict=True)
            )
        }
        if not exceeded or score <= 0:
            return []
        banned = {result.subject for result in results if result.ban is not None}
        others = [s for s in (plan.ip_subject, plan.user) if s is not None and s not in exceeded | banned]
        ops = [self._op(subject, actor, kind, score_always=score) for subject in others]
        if once:
            ops = _marked(ops, once, "c")
        return await self.store.apply(ops, now_ms) if ops else []

    async def _settle_login(
        self, plan: _Plan, results: list[SubjectResult], actor: str, once: str = ""
    ) -> list[SubjectResult]:
        """A refused login counts nowhere, and scores the address only when its own limit refused it.

        Subjects live in separate keys (one Cluster slot each), so the first round trip counts
        the attempt everywhere without scoring; a refusal (never the common path) takes this
        second one: it takes the attempt back out of every window that counted it, and scores
        the address when its own window was full and no account throttle refused the attempt.
        An owner locked out by an attacker's account throttle then never gets its address
        banned, and a flood from one address still is.
        """
        refused = False
        account_refused = ip_exceeded = banned = False
        undo: list[tuple[int, SubjectOp]] = []
        for op, result in zip(plan.ops, results, strict=True):
            if result.ban is not None:  # a banned subject's op stopped before its windows
                banned = True
                continue
            for window, outcome in zip(op.windows, result.windows, strict=True):
                if outcome.exceeded:
                    refused = True
                    account_refused = account_refused or op.subject.startswith("account:")
                    ip_exceeded = ip_exceeded or op.subject == plan.ip_subject
                elif window.mode == "hit":
                    uncount = WindowOp(window.name, "uncount", window.max, window.window_ms)
                    undo.append((result.now_ms, SubjectOp(op.subject, check_ban=False, windows=(uncount,))))
        if not (refused or banned):
            return []
        if ip_exceeded and not account_refused and not banned and plan.login_score > 0:
            assert plan.ip_subject is not None
            now = results[0].now_ms
            undo.append((now, self._op(plan.ip_subject, actor, "login", score_always=plan.login_score)))
        settled: list[SubjectResult] = []
        for step, at in enumerate(sorted({at for at, _ in undo})):  # the undo names entries by time
            ops = [op for when, op in undo if when == at]
            settled += await self.store.apply(_marked(ops, once, f"s{step}") if once else ops, at)
        return settled

    def _decide(self, kind: str, plan: _Plan, results: list[SubjectResult], now_ms: int | None) -> Decision:
        now = results[0].now_ms if results else (now_ms or 0)
        score = max((r.score for r in results), default=0)
        bans = [r.ban for r in results if r.ban is not None]
        if bans:
            ban = max(bans, key=lambda b: b.expires_at_ms)
            return Decision(False, seconds_until(ban.expires_at_ms, now), plan.limit, 0, score, ban, now)
        allowed = kind not in ALWAYS_VIOLATION
        counted: list[tuple[int, int, int]] = []  # (retry ms, limit, remaining)
        blocked: list[tuple[int, int, int]] = []
        for op, result in zip(plan.ops, results, strict=False):
            for window, outcome in zip(op.windows, result.windows, strict=True):
                entry = (outcome.retry_after_ms, window.max, max(0, window.max - outcome.count))
                (blocked if outcome.exceeded else counted).append(entry)
        if blocked:
            allowed = False
            binding = max(blocked, key=lambda e: e[0])
        elif counted:
            binding = min(counted, key=lambda e: e[2])
        else:
            binding = (0, plan.limit, plan.limit)
        retry_ms, limit, remaining = binding
        return Decision(allowed, seconds_until(now + retry_ms, now), limit, remaining, score, None, now)

    async def _announce(self, results: list[SubjectResult]) -> None:
        """New automatic bans go to the index, the change feed and the audit log.

        A replayed result's ban was announced by the first call (the cluster's reconcile covers
        a first call that died in between).
        """
        for result in results:
            if result.new_ban and result.ban is not None and not result.replayed:
                await self._record_ban(result.ban)
            elif result.threshold:
                log.info("score_threshold_without_ban", subject=result.subject, score=result.score)

    async def _record_ban(self, ban: BanState) -> None:
        await self.store.record_change(change_for(ban), ban)
        self.metrics.ban(ban.subject, ban.automatic)
        audit(
            "moderation_ban",
            subject=ban.subject,
            by=ban.by,
            reason=ban.reason,
            expires_at_ms=ban.expires_at_ms,
            automatic=ban.automatic,
        )

    # Violations reported by other services ---------------------------------------------------

    async def violation(self, violation: Violation, actor: str, now_ms: int | None = None) -> Decision:
        configured = self.policy.score(violation.type)
        score = configured if violation.score is None else min(violation.score, configured)
        ops: list[SubjectOp] = []
        if violation.ip is not None:
            client = client_address(violation.ip, self.policy.exempt)
            if not client.exempt and client.bannable:
                ops.append(self._op(client.counted, actor, violation.type, score_always=score))
        if violation.user_id is not None:
            ops.append(self._op(user_subject(violation.user_id), actor, violation.type, score_always=score))
        results = await self.store.apply(ops, now_ms)
        await self._announce(results)
        plan = _Plan(ops, None, None, 0)
        decision = self._decide(violation.type, plan, results, now_ms)
        return decision

    # Checks and manual bans ----------------------------------------------------------------

    async def check(self, ip: str | None, user_id: str | None, now_ms: int | None = None) -> Decision:
        subjects: list[str] = []
        if user_id is not None:
            subjects.append(user_subject(user_id))
        if ip is not None:
            client = client_address(ip, self.policy.exempt)
            if not client.exempt and client.bannable:
                subjects.extend(client.subjects)
        results = await self.store.apply([SubjectOp(subject=s) for s in subjects], now_ms)
        return self._decide("check", _Plan([], None, None, 0), results, now_ms)

    def ensure_bannable(self, subject: str) -> None:
        if subject.startswith("account:"):
            raise SubjectExempt("account subjects are throttled, never banned; ban the user instead")
        if is_exempt(subject, self.policy.exempt):
            raise SubjectExempt(
                f"{subject} is inside TRUSTED_PROXIES or BAN_EXEMPT_CIDRS and is never banned"
            )

    async def ban(
        self, subject: str, reason: str, duration_ms: int, actor: str, now_ms: int | None = None
    ) -> BanState:
        self.ensure_bannable(subject)
        ban = await self.store.set_ban(subject, reason, duration_ms, actor, now_ms)
        await self._record_ban(ban)
        return ban

    async def unban(
        self, subject: str, reason: str, actor: str, now_ms: int | None = None
    ) -> BanState | None:
        at, ban = await self.store.delete_ban(subject, now_ms)
        if ban is None:
            return None
        await self.store.record_change(Change("unban", subject, reason, at, actor), None)
        self.metrics.unban(subject)
        audit("moderation_unban", subject=subject, by=actor, reason=reason)
        return ban

    async def list_bans(self, after: str | None, limit: int, now_ms: int | None = None) -> BanPage:
        return await self.store.list_bans(after, limit, now_ms)

    async def changes(self, since: str | None, limit: int) -> FeedPage:
        return await self.store.feed(since, limit)

    async def audit_trail(self, subject: str | None, since_ms: int | None, limit: int) -> list[Change]:
        return await self.store.audit(subject, since_ms, limit)


def _marked(ops: list[SubjectOp], once: str, round_trip: str) -> list[SubjectOp]:
    """Each op's `once` marker: the event's key, the round trip and the op's place in it."""
    return [dataclasses.replace(op, once=f"{once}.{round_trip}{i}") for i, op in enumerate(ops)]
