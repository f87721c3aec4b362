"""POST /v1/violations: a violation another service detected, scored at most at its type's score."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from shared.http import parse_body
from shared.moderation.decisions import Violation

from .common import ban_out, caller, engine, json_response, may_report
from .schemas import ViolationIn, ViolationOut


async def post_violation(request: Request) -> Response:
    who = caller(request, "report")
    body = await parse_body(request, ViolationIn)
    may_report(who, body.type, scores_user=body.user_id is not None)
    violation = Violation(type=body.type, ip=body.ip, user_id=body.user_id, score=body.score)
    decision = await engine(request).violation(violation, who.name)
    out = ViolationOut(score=decision.score, ban=ban_out(decision.ban, decision.retry_after))
    return json_response(out, exclude_none=True)
