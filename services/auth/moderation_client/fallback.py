"""Fail open: answer a check in process when moderation cannot.

The shared engine runs on a memory store with the same limits moderation applies
(ban policy off: only moderation bans); the last-known bans still refuse. No metrics
hook: auth's /metrics carries the client's own numbers, never moderation's.
"""

from __future__ import annotations

from typing import Any

import structlog

from services.auth.moderation_client.answers import Decision
from services.auth.moderation_client.bans import BanCache
from services.auth.moderation_client.settings import ModerationClientSettings
from shared.moderation.decisions import Event
from shared.moderation.engine import Engine
from shared.moderation.policy import BanPolicy, Policy
from shared.moderation.store_memory import MemoryStore
from shared.moderation.subjects import UNKNOWN_CLIENT, InvalidSubject, client_address

log = structlog.get_logger("authgate.moderation_client")


class LocalFallback:
    def __init__(self, settings: ModerationClientSettings, bans: BanCache) -> None:
        self.settings = settings
        self.bans = bans
        policy = Policy(limits=settings.limits, bans=BanPolicy(enabled=False), exempt=settings.exempt)
        self.engine = Engine(MemoryStore(policy.bans), policy)

    async def decide(self, event_type: str, body: dict[str, Any]) -> Decision:
        ip = str(body["ip"])
        try:
            client_address(ip, self.settings.exempt)
        except InvalidSubject:  # moderation refused it too (422): count it as the unknown client
            log.warning("client_ip_unusable", event_type=event_type)
            ip = UNKNOWN_CLIENT
        local = await self.engine.event(
            Event(
                type=event_type,
                ip=ip,
                user_id=body.get("user_id"),
                account=body.get("account"),
                device_trusted=bool(body.get("device_trusted", False)),
                release=bool(body.get("release", False)),
                submission=bool(body.get("submission", False)),
                second_factor=bool(body.get("second_factor", False)),
            ),
            "local",
            self.bans.wall_ms(),
        )
        ban = self.bans.is_banned(ip=body["ip"], user_id=body.get("user_id"))
        if ban is not None:
            now = self.bans.wall_ms()
            return Decision(False, ban.retry_after(now), local.limit, 0, 0, ban, degraded=True)
        return Decision(
            local.allowed, local.retry_after, local.limit, local.remaining, 0, None, degraded=True
        )
