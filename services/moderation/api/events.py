"""POST /v1/events: count one occurrence and answer whether to let it through.

An `Idempotency-Key` header makes a retry safe: the same caller sending the same event with the
same key within the marker's lifetime (at least a minute) counts it once and gets the first
answer back. The key is bound to the caller and the body, so it can only ever repeat itself.
"""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import Response

from services.moderation.metrics import EVENTS
from shared.errors import ApiError, ErrorCode
from shared.http import parse_body, valid_request_id
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
    once = _once_marker(request, who.name, body)
    decision = await engine(request).event(event, who.name, once=once)
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


IDEMPOTENCY_HEADER = "idempotency-key"


def _once_marker(request: Request, caller_name: str, body: EventIn) -> str:
    """The stores' marker for this caller, key and event; '' without the header."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return ""
    if not valid_request_id(key):
        raise ApiError(
            422,
            ErrorCode.INVALID_INPUT,
            "Idempotency-Key must be 1-128 characters of letters, digits and - _ . :",
        )
    seed = "\0".join((caller_name, key, body.model_dump_json()))
    return hashlib.blake2b(seed.encode(), digest_size=16).hexdigest()
