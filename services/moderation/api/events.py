"""POST /v1/events: count one occurrence and answer whether to let it through."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from services.moderation.metrics import EVENTS
from shared.http import parse_body
from shared.moderation.decisions import Event

from .common import ban_out, caller, engine, json_response, may_report
from .schemas import EventIn, EventOut


async def post_event(request: Request) -> Response:
    who = caller(request, "report")
    body = await parse_body(request, EventIn)
    may_report(who, body.type, scores_user=body.user_id is not None)
    event = Event(
        type=body.type,
        ip=body.ip,
        user_id=body.user_id,
        account=body.account,
        device_trusted=body.device_trusted,
        release=body.release,
        submission=body.submission,
        second_factor=body.second_factor,
    )
    decision = await engine(request).event(event, who.name)
    outcome = "banned" if decision.ban is not None else "allowed" if decision.allowed else "limited"
    EVENTS.labels(body.type, outcome).inc()
    out = EventOut(
        allowed=decision.allowed,
        retry_after=decision.retry_after,
        limit=decision.limit,
        remaining=decision.remaining,
        score=decision.score,
        ban=ban_out(decision.ban, decision.retry_after),
    )
    return json_response(out, exclude_none=True)
