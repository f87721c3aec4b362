"""Ban checks, the ban list, manual bans and unbans, and the change feed ban caches follow."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from shared.errors import ApiError, ErrorCode
from shared.http import parse_body
from shared.moderation.decisions import SubjectExempt
from shared.moderation.store import FeedEntry
from shared.moderation.subjects import InvalidSubject, parse_subject

from .common import ban_record, caller, engine, json_response, parse_query
from .schemas import (
    BanIn,
    BanListOut,
    ChangeOut,
    ChangesOut,
    ChangesQuery,
    CheckOut,
    CheckQuery,
    ListQuery,
    UnbanOut,
    UnbanQuery,
    iso,
)


async def check(request: Request) -> Response:
    caller(request, "report")
    query = parse_query(request, CheckQuery)
    if query.ip is None and query.user_id is None:
        return json_response(CheckOut(banned=False))
    decision = await engine(request).check(query.ip, query.user_id)
    ban = decision.ban
    if ban is None:
        return json_response(CheckOut(banned=False))
    out = CheckOut(
        banned=True,
        subject=ban.subject,
        reason=ban.reason,
        expires_at=iso(ban.expires_at_ms),
        retry_after=decision.retry_after,
    )
    return json_response(out)


async def collection(request: Request) -> Response:
    """/v1/bans: one route for both methods, so a 405 lists them both in `Allow`."""
    if request.method == "POST":
        return await create_ban(request)
    return await list_bans(request)


async def list_bans(request: Request) -> Response:
    """A page of active bans plus the feed cursor to resume from (taken before the page is read)."""
    caller(request, "report")
    query = parse_query(request, ListQuery)
    moderation = engine(request)
    feed = await moderation.changes(None, 1)
    page = await moderation.list_bans(query.cursor, query.limit)
    out = BanListOut(
        bans=[ban_record(ban, page.now_ms) for ban in page.bans], next=page.next, feed_cursor=feed.cursor
    )
    return json_response(out)


async def create_ban(request: Request) -> Response:
    who = caller(request, "admin")
    body = await parse_body(request, BanIn)
    try:
        ban = await engine(request).ban(body.subject, body.reason, body.duration_seconds * 1000, who.name)
    except SubjectExempt as exc:
        raise ApiError(409, ErrorCode.SUBJECT_EXEMPT, str(exc)) from None
    return json_response(ban_record(ban, ban.created_at_ms), status_code=201)


async def delete_ban(request: Request) -> Response:
    who = caller(request, "admin")
    try:
        subject = parse_subject(request.path_params["subject"])
    except InvalidSubject as exc:
        raise ApiError(422, ErrorCode.INVALID_SUBJECT, str(exc)) from None
    query = parse_query(request, UnbanQuery)
    ban = await engine(request).unban(subject, query.reason, who.name)
    if ban is None:
        raise ApiError(404, ErrorCode.BAN_NOT_FOUND, f"{subject} is not banned.")
    return json_response(UnbanOut(subject=subject, unbanned=True, ban=ban_record(ban, ban.created_at_ms)))


def _change(entry: FeedEntry) -> ChangeOut:
    change = entry.change
    return ChangeOut(
        cursor=entry.cursor,
        action=change.action,
        subject=change.subject,
        reason=change.reason,
        at=iso(change.at_ms),
        by=change.by,
        expires_at=None if change.expires_at_ms is None else iso(change.expires_at_ms),
        automatic=change.automatic,
    )


async def changes(request: Request) -> Response:
    """Changes after `since`; `reset` when the cursor is unknown or trimmed away (reload the list)."""
    caller(request, "report")
    query = parse_query(request, ChangesQuery)
    page = await engine(request).changes(query.since, query.limit)
    out = ChangesOut(cursor=page.cursor, reset=page.reset, changes=[_change(e) for e in page.entries])
    return json_response(out)
