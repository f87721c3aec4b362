"""Security events: one record in `auth_audit` (TTL-indexed) and one structured log line.

An audit write never fails the request it describes: a store hiccup is logged
and the request goes on (the log line still carries the event).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import structlog

from services.auth.store import AuditRepository, StoreFailure
from shared.errors import StoreUnavailable
from shared.logging import audit as log_audit

log = structlog.get_logger("authgate.audit")


class AuditTrail:
    def __init__(self, records: AuditRepository) -> None:
        self._records = records

    async def record(
        self,
        event: str,
        *,
        user_id: str | None = None,
        ip: str | None = None,
        actor: str | None = None,
        outcome: str = "success",
        **details: Any,
    ) -> None:
        at = dt.datetime.now(dt.UTC)
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        doc: dict[str, Any] = {
            "event": event,
            "at": at,
            "user_id": user_id,
            "ip": ip,
            "actor": actor,
            "outcome": outcome,
            "request_id": request_id,
            **details,
        }
        log_audit(event, user_id=user_id, ip=ip, actor=actor, outcome=outcome, **details)
        try:
            await self._records.insert(doc)
        except (StoreUnavailable, StoreFailure) as exc:
            log.warning("audit_write_failed", audit_event=event, error=type(exc).__name__)

    async def query(
        self, *, user_id: str | None = None, since: dt.datetime | None = None, limit: int = 200
    ) -> list[dict[str, Any]]:
        return await self._records.query(user_id, since, limit)
