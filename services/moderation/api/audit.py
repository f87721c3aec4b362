"""GET /v1/audit: who banned or unbanned whom, when and why (admin keys only)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from .common import caller, engine, json_response, parse_query
from .schemas import AuditOut, AuditQuery, AuditRecordOut, iso


async def audit_trail(request: Request) -> Response:
    caller(request, "admin")
    query = parse_query(request, AuditQuery)
    records = await engine(request).audit_trail(query.subject, query.since_ms(), query.limit)
    out = AuditOut(
        records=[
            AuditRecordOut(
                action=r.action,
                subject=r.subject,
                reason=r.reason,
                at=iso(r.at_ms),
                by=r.by,
                expires_at=None if r.expires_at_ms is None else iso(r.expires_at_ms),
                automatic=r.automatic,
                violation=r.violation or None,
            )
            for r in records
        ]
    )
    return json_response(out)
