"""Credential stuffing against one account from many addresses.

The per-account throttle (LOGIN_ACCOUNT_MAX failures per LOGIN_ACCOUNT_WINDOW, from
all addresses together) slows the attacker; the owner, whose browser holds an
`authgate_device` cookie from an earlier successful login, still gets in; neither
the owner's user nor the owner's home address is ever banned by the attack; and a
password reset or `revoke-sessions` kills the old device cookies.
"""

from __future__ import annotations

import pytest

from services.auth.devices import DEVICE_COOKIE
from tests.e2e.conftest import Stack, assert_limited, fresh_email
from tests.integration.support import STRONG_PASSWORD

ACCOUNT_MAX = 3  # LOGIN_ACCOUNT_MAX
LOGIN_MAX = 3
DEVICE_MAX = 6  # LOGIN_DEVICE_MAX
WRONG = "not the password at all, sorry"
NEW_PASSWORD = "a brand new passphrase for the owner"


@pytest.mark.parametrize("command", ["reset-password", "revoke-sessions"])
async def test_stuffing_throttles_the_account_but_not_its_owner(stack: Stack, command: str) -> None:
    email = fresh_email("owner")
    home = stack.fresh_ip()
    registered = await stack.register(home, email)
    assert registered.status_code == 200, registered.text
    browser = stack.client(home)
    first = await browser.post("/api/auth/login", json={"email": email, "password": STRONG_PASSWORD})
    assert first.status_code == 200, first.text
    user_id = first.json()["user"]["id"]
    device_cookie = browser.cookies.get(DEVICE_COOKIE)
    assert device_cookie, "a browser login sets the device cookie"
    set_cookie = [v for v in first.headers.get_list("set-cookie") if v.startswith(f"{DEVICE_COOKIE}=")]
    assert "httponly" in set_cookie[0].lower() and "secure" in set_cookie[0].lower()

    # The attack: one wrong password from each of many addresses, none over its own per-IP limit.
    attackers = [stack.fresh_ip() for _ in range(ACCOUNT_MAX + 3)]
    for ip in attackers[:ACCOUNT_MAX]:
        response = await stack.login(ip, email, WRONG)
        assert response.status_code == 401, response.text
    # The account has had its failures: every further attempt is throttled, whatever the address...
    for ip in attackers[ACCOUNT_MAX:]:
        assert_limited(await stack.login(ip, email, WRONG), ACCOUNT_MAX)
    # ...the right password too, from a client without the cookie (the same email in another case).
    assert_limited(await stack.login(stack.fresh_ip(), email.upper(), STRONG_PASSWORD), ACCOUNT_MAX)

    # The owner's browser, holding the device cookie, still logs in (from home and elsewhere).
    again = await browser.post("/api/auth/login", json={"email": email, "password": STRONG_PASSWORD})
    assert again.status_code == 200, again.text
    travelling = stack.client(stack.fresh_ip())
    travelling.cookies.set(DEVICE_COOKIE, device_cookie, domain="auth.test", path="/api/auth")
    away = await travelling.post("/api/auth/login", json={"email": email, "password": STRONG_PASSWORD})
    assert away.status_code == 200, away.text
    # A forged cookie does not open the door.
    forged = stack.client(stack.fresh_ip())
    forged.cookies.set(DEVICE_COOKIE, device_cookie[:-4] + "AAAA", domain="auth.test", path="/api/auth")
    refused = await forged.post("/api/auth/login", json={"email": email, "password": STRONG_PASSWORD})
    assert_limited(refused, ACCOUNT_MAX)

    # The stuffing banned nobody: not the owner's user, not the owner's home address, no attacker address.
    assert (await stack.check(user_id=user_id))["banned"] is False
    assert (await stack.check(ip=home))["banned"] is False
    assert await stack.score(home) == 0
    for ip in attackers:
        assert (await stack.check(ip=ip))["banned"] is False
    assert [r for r in await stack.audit() if r["subject"] in {f"user:{user_id}", f"ip:{home}"}] == []

    # An attacker address that keeps going on other accounts exceeds its own per-IP limit: it is
    # scored, then banned (its refused attempts on the throttled account counted nowhere).
    persistent = attackers[-1]
    statuses = [
        (await stack.login(persistent, fresh_email("other"), WRONG)).status_code for _ in range(LOGIN_MAX + 3)
    ]
    assert statuses[:LOGIN_MAX] == [401] * LOGIN_MAX, statuses
    assert statuses[LOGIN_MAX:-1] == [429, 429], statuses
    assert statuses[-1] == 403, statuses
    assert (await stack.check(ip=persistent))["banned"] is True
    assert (await stack.check(ip=home))["banned"] is False
    assert (await stack.check(user_id=user_id))["banned"] is False

    # Reset the password (or revoke the sessions) with the CLI: the epoch moves, old cookies die.
    if command == "reset-password":
        await stack.cli("reset-password", email, "--password-stdin", stdin=NEW_PASSWORD + "\n")
        password = NEW_PASSWORD
    else:
        await stack.cli("revoke-sessions", email)
        password = STRONG_PASSWORD
    state = await stack.collection("auth_user_state").find_one({"_id": user_id})
    assert state is not None and state["device_epoch"] >= 1
    # The account is still throttled; the old cookie no longer widens the door.
    stale = stack.client(stack.fresh_ip())
    stale.cookies.set(DEVICE_COOKIE, device_cookie, domain="auth.test", path="/api/auth")
    assert_limited(
        await stale.post("/api/auth/login", json={"email": email, "password": password}), ACCOUNT_MAX
    )
    # The cookie the browser got after the attack began was issued at the old epoch too.
    assert_limited(
        await browser.post("/api/auth/login", json={"email": email, "password": password}), ACCOUNT_MAX
    )


async def test_an_owner_retrying_from_home_under_an_account_throttle_is_never_banned(stack: Stack) -> None:
    email = fresh_email("owner")
    home = stack.fresh_ip()
    assert (await stack.register(stack.fresh_ip(), email)).status_code == 200
    browser = stack.client(home)
    login = {"email": email, "password": STRONG_PASSWORD}
    assert (await browser.post("/api/auth/login", json=login)).status_code == 200  # the device cookie
    for _ in range(ACCOUNT_MAX):  # an attacker throttles the account from elsewhere
        assert (await stack.login(stack.fresh_ip(), email, WRONG)).status_code == 401
    # The owner, on a new device at home, retries far past LOGIN_MAX + BAN_INTERVAL: always 429.
    for _ in range(4 * (LOGIN_MAX + 3)):
        assert_limited(await stack.login(home, email), ACCOUNT_MAX)
    assert (await stack.check(ip=home))["banned"] is False
    assert await stack.score(home) == 0
    # The owner's device-cookie browser at home still gets in.
    again = await browser.post("/api/auth/login", json=login)
    assert again.status_code == 200, again.text


async def test_the_device_cookie_widens_the_door_but_never_removes_it(stack: Stack) -> None:
    email = fresh_email("owner")
    home = stack.fresh_ip()
    assert (await stack.register(home, email)).status_code == 200
    browser = stack.client(home)
    login = {"email": email, "password": STRONG_PASSWORD}
    assert (await browser.post("/api/auth/login", json=login)).status_code == 200
    device_cookie = browser.cookies.get(DEVICE_COOKIE)
    assert device_cookie

    # Someone holding the cookie guesses: the failures count against LOGIN_DEVICE_MAX, not
    # LOGIN_ACCOUNT_MAX, so the account's ordinary door is untouched by them...
    for _ in range(DEVICE_MAX):
        holder = stack.client(stack.fresh_ip())
        holder.cookies.set(DEVICE_COOKIE, device_cookie, domain="auth.test", path="/api/auth")
        response = await holder.post("/api/auth/login", json={"email": email, "password": WRONG})
        assert response.status_code == 401, response.text
    plain = await stack.login(stack.fresh_ip(), email)
    assert plain.status_code == 200, plain.text
    # ...but past the device cap the cookie no longer helps, even with the right password.
    holder = stack.client(stack.fresh_ip())
    holder.cookies.set(DEVICE_COOKIE, device_cookie, domain="auth.test", path="/api/auth")
    assert_limited(await holder.post("/api/auth/login", json=login), DEVICE_MAX)


async def test_the_throttle_is_the_same_for_unknown_accounts_and_any_spelling(stack: Stack) -> None:
    known = fresh_email("known")
    assert (await stack.register(stack.fresh_ip(), known)).status_code == 200
    unknown = fresh_email("unknown")
    curves: dict[str, list[tuple[int, str]]] = {}
    attempts = 2 * ACCOUNT_MAX
    for email in (known, unknown):
        # Spellings of one normalized email share one counter.
        spellings = [email, email.upper(), f"  {email.title()}  "] * (attempts // 3)
        answers = [await stack.login(stack.fresh_ip(), spelling, WRONG) for spelling in spellings]
        curves[email] = [(r.status_code, r.json()["code"]) for r in answers]
    assert curves[known] == curves[unknown]
    expected = [(401, "invalid_credentials")] * ACCOUNT_MAX + [(429, "rate_limited")] * ACCOUNT_MAX
    assert curves[known] == expected
