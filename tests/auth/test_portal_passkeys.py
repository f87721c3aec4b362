"""The portal's passkeys: the sign-in button's endpoints, /portal/account/passkeys, their CSRF rules.

No browser here: the software authenticator answers what passkeys.js would send (a real
Chromium with a virtual authenticator drives the same endpoints in the browser tests).
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from services.auth.moderation_client import BanInfo
from tests.auth.api_helpers import assert_error, email
from tests.auth.conftest import STRONG_PASSWORD, AuthApp
from tests.auth.portal_helpers import (
    PAGE_HEADERS,
    PORTAL,
    SCRIPT_PAGE_HEADERS,
    SESSION,
    csrf_of,
    only_script_files,
    portal_app,
    post_form,
    session_cookie,
    sign_in,
)
from tests.auth.webauthn_helpers import SoftAuthenticator

ACCOUNT = "/portal/account/passkeys"
_PASSKEY_ID = re.compile(r'action="/portal/account/passkeys/([^/"]+)/remove"')


@pytest.fixture
async def auth(app_factory: Callable[..., Any]) -> AsyncIterator[AuthApp]:
    async with portal_app(app_factory) as running:
        yield running


async def call(
    client: httpx.AsyncClient,
    path: str,
    csrf: str | None,
    body: dict[str, Any] | None = None,
    origin: str = PORTAL,
) -> httpx.Response:
    headers = {"Origin": origin}
    if csrf is not None:
        headers["X-CSRF-Token"] = csrf
    return await client.post(path, json=body or {}, headers=headers)


async def add_passkey(client: httpx.AsyncClient, key: SoftAuthenticator, name: str = "") -> httpx.Response:
    """What passkeys.js does on the account page: options, create(), verify."""
    page = await client.get(ACCOUNT)
    assert page.status_code == 200, page.text
    csrf = re.search(r'data-csrf="([^"]+)"', page.text)
    assert csrf
    assert 'id="passkey-password"' in page.text  # the account has a password: it is asked for
    refused = await call(client, "/portal/passkeys/register/options", csrf.group(1))
    assert refused.status_code == 401 and refused.json()["code"] == "invalid_credentials"
    password = {"password": STRONG_PASSWORD}
    options = await call(client, "/portal/passkeys/register/options", csrf.group(1), password)
    assert options.status_code == 200, options.text
    body = {"credential": key.create(options.json()), "name": name or None}
    return await call(client, "/portal/passkeys/register/verify", csrf.group(1), body)


async def passkey_sign_in(
    client: httpx.AsyncClient, key: SoftAuthenticator, rd: str = ""
) -> tuple[httpx.Response, httpx.Response]:
    """What passkeys.js does on the sign-in page; (the page, the verify answer)."""
    page = await client.get("/portal/login", params={"rd": rd} if rd else None)
    csrf = csrf_of(page)
    options = await call(client, "/portal/passkeys/login/options", csrf)
    assert options.status_code == 200, options.text
    body = {"credential": key.get(options.json()), "rd": rd}
    return page, await call(client, "/portal/passkeys/login/verify", csrf, body)


async def signed_in_browser(auth: AuthApp) -> tuple[httpx.AsyncClient, str]:
    address = email()
    await auth.register(address)
    browser = auth.new_client()
    assert (await sign_in(browser, address)).status_code == 303
    return browser, address


async def test_the_sign_in_page_offers_a_passkey_and_it_signs_in(auth: AuthApp) -> None:
    browser, address = await signed_in_browser(auth)
    key = SoftAuthenticator(PORTAL)
    assert (await add_passkey(browser, key, "Laptop")).status_code == 201
    fresh = auth.new_client()
    rd = "https://app.example.com/reports?q=1"
    page, answer = await passkey_sign_in(fresh, key, rd)
    assert 'id="passkey-button"' in page.text and len(only_script_files(page)) == 1
    # The password form on the same page may be redirected to rd's origin (form-action).
    assert page.headers["content-security-policy"] == SCRIPT_PAGE_HEADERS["content-security-policy"].replace(
        "form-action 'self'", "form-action 'self' https://app.example.com"
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"redirect": rd}
    token = session_cookie(fresh)
    assert token
    (cookie,) = [h for h in answer.headers.get_list("set-cookie") if h.startswith(SESSION + "=")]
    assert {"httponly", "secure", "samesite=lax", "path=/"} <= {p.strip().lower() for p in cookie.split(";")}
    checker = auth.new_client()
    verified = await checker.get("/verify", headers={"Cookie": f"{SESSION}={token}"})
    assert verified.status_code == 200 and verified.headers["x-auth-email"] == address
    assert verified.headers["x-auth-amr"] == "hwk"
    # A passkey with user verification counts as multi-factor for ?mfa=required.
    strict = await checker.get("/verify?mfa=required", headers={"Cookie": f"{SESSION}={token}"})
    assert strict.status_code == 200
    # An rd the allow-list refuses is dropped.
    _, elsewhere = await passkey_sign_in(auth.new_client(), key, "https://evil.example/")
    assert elsewhere.json() == {"redirect": "/portal/login"}
    script = await auth.client.get("/portal/static/passkeys.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "navigator.credentials.get" in script.text and "X-CSRF-Token" in script.text


@pytest.mark.parametrize("case", ["missing", "wrong", "foreign_origin", "another_browsers"])
async def test_the_script_endpoints_refuse_without_csrf(auth: AuthApp, case: str) -> None:
    browser, _ = await signed_in_browser(auth)
    key = SoftAuthenticator(PORTAL)
    await add_passkey(browser, key)
    victim = auth.new_client()
    csrf: str | None = csrf_of(await victim.get("/portal/login"))
    good_options = (await call(victim, "/portal/passkeys/login/options", csrf)).json()
    origin = PORTAL
    if case == "missing":
        csrf = None
    elif case == "wrong":
        csrf = "A" * 43
    elif case == "foreign_origin":
        origin = "https://evil.example"
    else:
        csrf = csrf_of(await auth.new_client().get("/portal/login"))
    challenges = await auth.collection("auth_webauthn_challenges").count_documents({})
    assert_error(await call(victim, "/portal/passkeys/login/options", csrf, origin=origin), 403, "forbidden")
    assert await auth.collection("auth_webauthn_challenges").count_documents({}) == challenges
    # Login CSRF: a forged sign-in with an attacker's passkey is refused, nothing is set.
    body = {"credential": key.get(good_options), "rd": ""}
    refused = await call(victim, "/portal/passkeys/login/verify", csrf, body, origin=origin)
    assert_error(refused, 403, "forbidden")
    assert session_cookie(victim) is None
    registration = await call(browser, "/portal/passkeys/register/options", csrf, origin=origin)
    assert_error(registration, 403, "forbidden")


async def test_the_account_page_lists_renames_and_removes(auth: AuthApp) -> None:
    browser, _ = await signed_in_browser(auth)
    empty = await browser.get(ACCOUNT)
    assert empty.status_code == 200 and "<title>Passkeys" in empty.text
    assert "You have no passkeys yet." in empty.text
    for name, value in SCRIPT_PAGE_HEADERS.items():
        assert empty.headers[name] == value
    assert len(only_script_files(empty)) == 1
    added = await add_passkey(browser, SoftAuthenticator(PORTAL), "Phone")
    assert added.status_code == 201 and added.json()["redirect"] == ACCOUNT + "?done=added"
    page = await browser.get(added.json()["redirect"])
    assert "Passkey added." in page.text and 'value="Phone"' in page.text
    (passkey_id,) = _PASSKEY_ID.findall(page.text)
    assert f'<label for="name-{passkey_id}">Name</label>' in page.text
    renamed = await post_form(
        browser, f"{ACCOUNT}/{passkey_id}/rename", {"csrf": csrf_of(page), "name": "Work <phone>"}
    )
    assert renamed.status_code == 303 and renamed.headers["location"] == ACCOUNT + "?done=renamed"
    page = await browser.get(renamed.headers["location"])
    assert 'value="Work &lt;phone&gt;"' in page.text and "Passkey renamed." in page.text
    # A form without its token changes nothing.
    refused = await post_form(browser, f"{ACCOUNT}/{passkey_id}/remove", {"csrf": "A" * 43})
    assert refused.status_code == 403 and "Request refused" in refused.text
    assert refused.headers["content-security-policy"] == PAGE_HEADERS["content-security-policy"]
    assert await auth.collection("auth_passkeys").count_documents({}) == 1
    removed = await post_form(browser, f"{ACCOUNT}/{passkey_id}/remove", {"csrf": csrf_of(page)})
    assert removed.status_code == 303 and removed.headers["location"] == ACCOUNT + "?done=removed"
    assert await auth.collection("auth_passkeys").count_documents({}) == 0
    gone = await post_form(browser, f"{ACCOUNT}/{passkey_id}/remove", {"csrf": csrf_of(page)})
    assert gone.status_code == 404 and "No such passkey." in gone.text


async def test_the_last_sign_in_method_stays(auth: AuthApp) -> None:
    browser, address = await signed_in_browser(auth)
    await add_passkey(browser, SoftAuthenticator(PORTAL))
    await auth.collection("users").update_one(
        {"email": address}, {"$unset": {"password": ""}, "$set": {"provider": "openid"}}
    )
    page = await browser.get(ACCOUNT)
    (passkey_id,) = _PASSKEY_ID.findall(page.text)
    refused = await post_form(browser, f"{ACCOUNT}/{passkey_id}/remove", {"csrf": csrf_of(page)})
    assert refused.status_code == 409 and "last way to sign in" in refused.text
    assert await auth.collection("auth_passkeys").count_documents({}) == 1


async def test_the_account_page_needs_a_live_portal_session(auth: AuthApp) -> None:
    anonymous = await auth.new_client().get(ACCOUNT)
    assert anonymous.status_code == 302 and anonymous.headers["location"].startswith("/portal/login")
    assert_error(await call(auth.new_client(), "/portal/passkeys/register/options", None), 403, "forbidden")
    browser, _ = await signed_in_browser(auth)
    csrf = csrf_of(await browser.get("/portal/logout"))
    assert (await post_form(browser, "/portal/logout", {"csrf": csrf})).status_code == 200
    assert (await browser.get(ACCOUNT)).status_code == 302
    stranger = auth.new_client()
    token = csrf_of(await stranger.get("/portal/login"))
    assert_error(await call(stranger, "/portal/passkeys/register/options", token), 401, "unauthorized")


async def test_without_a_relying_party_the_portal_has_no_passkeys(app_factory: Callable[..., Any]) -> None:
    async with app_factory(AUTH_REDIRECT_DOMAINS=".example.com") as auth:
        page = await auth.client.get("/portal/login")
        assert 'id="passkey-button"' not in page.text and "<script" not in page.text
        assert page.headers["content-security-policy"] == PAGE_HEADERS["content-security-policy"]
        assert '<label for="password">' in page.text  # the password form is all there is
        assert (await auth.client.get(ACCOUNT)).status_code == 404


async def test_a_banned_address_gets_json_from_the_script_endpoints(auth: AuthApp) -> None:
    peer = "198.51.100.93"
    ends = int(time.time() * 1000) + 600_000
    await auth.ctx.protection.client.bans.learn(BanInfo(f"ip:{peer}", "abuse", ends))
    browser = auth.new_client(peer)
    assert (await browser.get("/portal/login")).status_code == 403  # the page says until when
    refused = await call(browser, "/portal/passkeys/login/options", "A" * 43)
    body = assert_error(refused, 403, "banned")
    assert body["expires_at"] == BanInfo(f"ip:{peer}", "abuse", ends).expires_at_iso()


async def test_the_script_endpoints_take_a_null_origin_only_from_the_same_origin(auth: AuthApp) -> None:
    """fetch() from a no-referrer page may send `Origin: null`; `Sec-Fetch-Site` then decides."""
    browser = auth.new_client()
    csrf = csrf_of(await browser.get("/portal/login"))
    for site, status in (("same-origin", 200), ("cross-site", 403)):
        headers = {"Origin": "null", "Sec-Fetch-Site": site, "X-CSRF-Token": csrf}
        answer = await browser.post("/portal/passkeys/login/options", json={}, headers=headers)
        assert answer.status_code == status, answer.text
