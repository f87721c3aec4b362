"""What every moderation route shares: the engine, caller authentication, query parsing, JSON out."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from shared.errors import ApiError, ErrorCode
from shared.http import Caller, ServiceKey, authenticate_service, validation_message
from shared.moderation.decisions import seconds_until
from shared.moderation.engine import Engine
from shared.moderation.store import BanState

from .schemas import BanOut, BanRecordOut, iso

Query = TypeVar("Query", bound=BaseModel)


def engine(request: Request) -> Engine:
    value: Engine = request.app.state.engine
    return value


def caller(request: Request, scope: str) -> Caller:
    keys: tuple[ServiceKey, ...] = request.app.state.keys
    return authenticate_service(request, keys, scope)


def may_report(who: Caller, event_type: str, scores_user: bool) -> None:
    """A key reports only the event types its scopes list, and scores users only with `report-user`."""
    if "admin" in who.scopes:
        return
    if event_type not in who.scopes:
        raise ApiError(
            403,
            ErrorCode.INSUFFICIENT_SCOPE,
            f"This key may not report {event_type!r}; add it to the key's scopes.",
        )
    if scores_user and "report-user" not in who.scopes:
        raise ApiError(
            403, ErrorCode.INSUFFICIENT_SCOPE, "Scoring user: subjects needs the 'report-user' scope."
        )


def parse_query(request: Request, model: type[Query]) -> Query:
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise ApiError(422, ErrorCode.INVALID_INPUT, validation_message(exc)) from None


def json_response(model: BaseModel, status_code: int = 200, exclude_none: bool = False) -> Response:
    body = model.model_dump_json(exclude_none=exclude_none)
    return Response(body, status_code=status_code, media_type="application/json")


def ban_out(ban: BanState | None, retry_after: int) -> BanOut | None:
    if ban is None:
        return None
    return BanOut(
        subject=ban.subject,
        reason=ban.reason,
        created_at=iso(ban.created_at_ms),
        expires_at=iso(ban.expires_at_ms),
        retry_after=retry_after,
    )


def ban_record(ban: BanState, now_ms: int) -> BanRecordOut:
    return BanRecordOut(
        subject=ban.subject,
        reason=ban.reason,
        created_at=iso(ban.created_at_ms),
        expires_at=iso(ban.expires_at_ms),
        retry_after=seconds_until(ban.expires_at_ms, now_ms),
        by=ban.by,
        automatic=ban.automatic,
        violation=ban.violation or None,
    )
