"""Security events: one record in `auth_audit` (TTL-indexed) and one structured log line.

An audit write never fails the request it describes: a store hiccup is logged
and the request goes on (the log line still carries the event).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import structlog
from pymongo.errors import PyMongoError

from services.auth.store import Store
from shared.logging import audit as log_audit

log = structlog.get_logger("authgate.audit")


class AuditTrail:
    def __init__(self, store: Store) -> None:
        self._store = store

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
            await self._store.c.audit.insert_one(doc)
        except PyMongoError as exc:
            log.warning("audit_write_failed", audit_event=event, error=type(exc).__name__)

    async def query(
        self, *, user_id: str | None = None, since: dt.datetime | None = None, limit: int = 200
    ) -> list[dict[str, Any]]:
        flt: dict[str, Any] = {}
        if user_id is not None:
            flt["user_id"] = user_id
        if since is not None:
            flt["at"] = {"$gte": since}
        cursor = self._store.c.audit.find(flt, {"_id": 0}).sort("at", -1).limit(limit)
        return [doc async for doc in cursor]
