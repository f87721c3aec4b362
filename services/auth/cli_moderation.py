"""`authgate ban-user / unban-user / list-bans / audit`: the moderation side of the admin CLI.

These talk to the moderation service's API with an admin key (MODERATION_ADMIN_KEY),
so bans made here go through the same audit trail and change feed as automatic
ones. Durations have units (30m, 2h, 7d): LibreChat's ban-user mixed minutes and
milliseconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import json
import re
from typing import Any

import httpx

from services.auth.accounts import user_id_of
from services.auth.context import AuthContext
from services.auth.sessions import RevokedByBan
from shared.config import Env
from shared.timefmt import iso_utc

DURATION = re.compile(r"(\d+)\s*([smhd])")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
SUBJECT_PREFIXES = ("user:", "ip:", "net:", "account:")


class ModerationCliError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def parse_duration(text: str) -> int:
    match = DURATION.fullmatch(text.strip().lower())
    if match is None or int(match[1]) <= 0:
        raise ModerationCliError(f"duration {text!r}: use a whole number with a unit, e.g. 30m, 2h, 7d", 2)
    return int(match[1]) * UNIT_SECONDS[match[2]]


def parse_since(text: str | None) -> dt.datetime | None:
    """`--since` as an ISO-8601 instant or a look-back like 2h / 7d."""
    if text is None:
        return None
    if DURATION.fullmatch(text.strip().lower()):
        return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=parse_duration(text))
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ModerationCliError(
            f"--since {text!r}: give an ISO-8601 time or a look-back like 2h", 2
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


async def resolve_subject(context: AuthContext, target: str) -> str:
    """An email (resolved to `user:<id>`), an IP address, or a subject in the grammar."""
    text = target.strip()
    if text.startswith(SUBJECT_PREFIXES):
        return text
    if "@" in text:
        user = await context.accounts.find_by_email(text)
        if user is None:
            raise ModerationCliError(f"no user with email {text.lower()!r}")
        return f"user:{user_id_of(user)}"
    try:
        return f"ip:{ipaddress.ip_address(text)}"
    except ValueError:
        raise ModerationCliError(
            f"{text!r} is not an email, an IP address or a subject (user:, ip:, net:)", 2
        ) from None


class AdminApi:
    """Moderation's admin endpoints over HTTP with the admin key."""

    def __init__(self, context: AuthContext, env: Env) -> None:
        key = env.secret("MODERATION_ADMIN_KEY")
        if key is None:
            raise ModerationCliError(
                "MODERATION_ADMIN_KEY is not set (an admin key of the moderation service)", 2
            )
        self._client = httpx.AsyncClient(
            base_url=context.settings.moderation.url,
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )

    async def __aenter__(self) -> AdminApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError:
            raise ModerationCliError(
                f"cannot reach the moderation service at {self._client.base_url}", 3
            ) from None
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = {}
        if response.status_code >= 400:
            code = body.get("code", response.status_code) if isinstance(body, dict) else response.status_code
            message = body.get("message", "") if isinstance(body, dict) else ""
            raise ModerationCliError(
                f"moderation refused: {message} ({code})", 3 if response.status_code >= 500 else 1
            )
        if not isinstance(body, dict):
            raise ModerationCliError("moderation answered something unexpected", 3)
        return body


def _print(args: argparse.Namespace, data: Any, lines: list[str]) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2), flush=True)
    else:
        for line in lines:
            print(line, flush=True)


async def ban_user(context: AuthContext, env: Env, args: argparse.Namespace) -> None:
    subject = await resolve_subject(context, args.target)
    seconds = parse_duration(args.duration)
    async with AdminApi(context, env) as api:
        ban = await api.call(
            "POST", "/v1/bans", json={"subject": subject, "reason": args.reason, "duration_seconds": seconds}
        )
    if subject.startswith("user:"):
        ends = dt.datetime.fromisoformat(str(ban["expires_at"]).replace("Z", "+00:00"))
        revoked = await context.sessions.revoke(
            user_id=subject.removeprefix("user:"),
            reason="user_banned",
            actor="cli",
            ban=RevokedByBan(args.reason, ends),
        )
    else:
        revoked = 0
    await context.audit.record(
        "cli_ban", actor="cli", subject=subject, duration_seconds=seconds, reason=args.reason
    )
    print(
        f"banned {subject} until {ban.get('expires_at')} ({args.reason}); revoked {revoked} session(s)",
        flush=True,
    )


async def unban_user(context: AuthContext, env: Env, args: argparse.Namespace) -> None:
    subject = await resolve_subject(context, args.target)
    async with AdminApi(context, env) as api:
        await api.call("DELETE", f"/v1/bans/{subject}", params={"reason": args.reason})
    await context.audit.record("cli_unban", actor="cli", subject=subject, reason=args.reason)
    print(f"unbanned {subject}", flush=True)


async def list_bans(context: AuthContext, env: Env, args: argparse.Namespace) -> None:
    bans: list[dict[str, Any]] = []
    async with AdminApi(context, env) as api:
        cursor: str | None = None
        while True:
            page = await api.call(
                "GET", "/v1/bans", params={"limit": "500", **({"cursor": cursor} if cursor else {})}
            )
            bans.extend(page.get("bans", []))
            cursor = page.get("next")
            if not cursor:
                break
    lines = [f"{'subject':40}  {'expires_at':26}  {'by':10}  reason"]
    lines += [f"{b['subject']:40}  {b['expires_at']:26}  {b['by']:10}  {b['reason']}" for b in bans]
    lines.append(f"{len(bans)} ban(s)")
    _print(args, bans, lines)


async def audit(context: AuthContext, env: Env, args: argparse.Namespace) -> None:
    """Auth's audit collection and moderation's audit stream, newest first."""
    since = parse_since(args.since)
    user_id: str | None = None
    if args.user:
        user = await context.accounts.find_by_email(args.user)
        if user is None:
            raise ModerationCliError(f"no user with email {args.user.lower()!r}")
        user_id = user_id_of(user)
    records: list[dict[str, Any]] = []
    if args.subject is None or user_id is not None:
        for doc in await context.audit.query(user_id=user_id, since=since, limit=args.limit):
            at = doc.pop("at")
            records.append(
                {"source": "auth", "at": _iso(at), **{k: v for k, v in doc.items() if v is not None}}
            )
    subject = args.subject or (f"user:{user_id}" if user_id else None)
    if env.secret("MODERATION_ADMIN_KEY") is not None or args.subject is not None:
        params = {"limit": str(args.limit)}
        if subject:
            params["subject"] = subject
        if since is not None:
            params["since"] = _iso(since)
        async with AdminApi(context, env) as api:
            page = await api.call("GET", "/v1/audit", params=params)
        records += [{"source": "moderation", **record} for record in page.get("records", [])]
    records.sort(key=lambda r: str(r.get("at", "")), reverse=True)
    lines = [
        f"{r.get('at', ''):27}  {r['source']:10}  {r.get('event') or r.get('action', ''):24}  "
        f"{r.get('user_id') or r.get('subject') or '-'}  {r.get('actor') or r.get('by') or ''}"
        for r in records[: args.limit]
    ]
    _print(args, records[: args.limit], lines or ["no audit records"])


def _iso(value: Any) -> str:
    return iso_utc(value) if isinstance(value, dt.datetime) else str(value)


def add_commands(sub: Any) -> None:
    p = sub.add_parser("ban-user", help="ban a user (by email), an IP, or a subject for a duration")
    p.add_argument("target", help="email, IP address, or user:/ip:/net: subject")
    p.add_argument("duration", help="30m, 2h, 7d, ...")
    p.add_argument("--reason", default="banned by an administrator")
    p.set_defaults(moderation_command=ban_user)

    p = sub.add_parser("unban-user", help="lift a ban")
    p.add_argument("target", help="email, IP address, or user:/ip:/net: subject")
    p.add_argument("--reason", default="lifted by an administrator")
    p.set_defaults(moderation_command=unban_user)

    p = sub.add_parser("list-bans", help="list active bans")
    p.add_argument("--json", action="store_true")
    p.set_defaults(moderation_command=list_bans)

    p = sub.add_parser("audit", help="security events from auth and moderation")
    p.add_argument("--user", help="a user's email")
    p.add_argument("--subject", help="a moderation subject (user:, ip:, net:)")
    p.add_argument("--since", help="ISO-8601 time or a look-back like 24h")
    p.add_argument("--limit", type=int, default=200)
    p.add_argument("--json", action="store_true")
    p.set_defaults(moderation_command=audit)
