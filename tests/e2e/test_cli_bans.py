"""`authgate ban-user / list-bans / unban-user / audit` as an operator runs them, end to end.

The CLI talks to moderation's admin API with MODERATION_ADMIN_KEY; the running
auth service learns the bans from the change feed.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx

from harness import eventually
from tests.e2e.conftest import BAN_DEADLINE_S, Stack, assert_banned, fresh_email

TWO_HOURS = 2 * 3600


def _parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


async def _list_bans(stack: Stack) -> list[dict[str, Any]]:
    bans: list[dict[str, Any]] = json.loads((await stack.cli("list-bans", "--json")).stdout)
    return bans


async def test_ban_list_unban_and_audit_through_the_cli(stack: Stack) -> None:
    email = fresh_email("cli")
    user = await stack.user(email)
    subject = f"user:{user['user_id']}"
    address = stack.fresh_ip()

    result = await stack.cli("ban-user", email.upper(), "2h", "--reason", "x")
    assert subject in result.stdout and "revoked 1 session(s)" in result.stdout
    await stack.cli("ban-user", address, "30m", "--reason", "y")

    bans = {ban["subject"]: ban for ban in await _list_bans(stack)}
    assert set(bans) == {subject, f"ip:{address}"}
    assert bans[subject]["reason"] == "x" and bans[subject]["by"] == "cli"
    left = (_parse(bans[subject]["expires_at"]) - dt.datetime.now(dt.UTC)).total_seconds()
    assert TWO_HOURS - 120 < left <= TWO_HOURS

    # The running service applies both: the user after a correct password (and on refresh)...
    async def login_banned() -> httpx.Response | None:
        response = await stack.login(stack.fresh_ip(), email)
        return response if response.status_code == 403 else None

    body = assert_banned(
        await eventually(login_banned, "the CLI's user ban in auth", timeout=BAN_DEADLINE_S),
        max_seconds=TWO_HOURS,
    )
    assert body["reason"] == "x"
    refresh = await stack.client(stack.fresh_ip()).post(
        "/api/auth/refresh", json={"refresh_token": user["refresh_token"]}
    )
    assert_banned(refresh, max_seconds=TWO_HOURS)
    # ...and the address on every route.
    assert_banned(await stack.client(address).get("/api/config"), max_seconds=1800)

    await stack.cli("unban-user", email)
    await stack.cli("unban-user", address)
    assert await _list_bans(stack) == []

    async def login_works() -> bool:
        return (await stack.login(stack.fresh_ip(), email)).status_code == 200

    await eventually(login_works, "a login after the CLI's unban", timeout=BAN_DEADLINE_S)
    assert (await stack.client(address).get("/api/config")).status_code == 200

    records: list[dict[str, Any]] = json.loads((await stack.cli("audit", "--since", "1h", "--json")).stdout)
    moderation = [(r["action"], r["subject"], r["by"]) for r in records if r["source"] == "moderation"]
    for expected in (
        ("ban", subject, "cli"),
        ("unban", subject, "cli"),
        ("ban", f"ip:{address}", "cli"),
        ("unban", f"ip:{address}", "cli"),
    ):
        assert expected in moderation, moderation
    auth = [(r["event"], r.get("subject")) for r in records if r["source"] == "auth"]
    for expected_auth in (("cli_ban", subject), ("cli_unban", subject), ("cli_ban", f"ip:{address}")):
        assert expected_auth in auth, auth
    # Newest first, and nothing older than the look-back.
    stamps = [_parse(r["at"]) for r in records]
    assert stamps == sorted(stamps, reverse=True)
    assert min(stamps) > dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
