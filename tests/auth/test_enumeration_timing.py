"""Known and unknown addresses answer alike, in body and in time, wherever an address is typed.

Each endpoint is called 30 times for a known and 30 times for an unknown address, interleaved so
machine noise falls on both; the medians are printed and must differ by less than 20 %. The
margin is generous on purpose: the point is that no path skips work (a lookup, a hash, a mail)
for one side, which shows as a factor, not a few per cent.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from harness.smtp import SmtpServer
from tests.auth.api_helpers import email
from tests.auth.conftest import STRONG_PASSWORD, AuthApp, registration
from tests.auth.test_password_reset import mail_env

TRIES = 30
MARGIN = 0.20


@pytest.fixture
async def auth(app_factory: Callable[..., Any], smtp: SmtpServer) -> AsyncIterator[AuthApp]:
    async with app_factory(**mail_env(smtp)) as running:
        yield running


async def compare(
    name: str,
    known: Callable[[], Awaitable[httpx.Response]],
    unknown: Callable[[], Awaitable[httpx.Response]],
) -> tuple[float, float]:
    """Median milliseconds of each side, printed; every answer of both sides identical."""
    timings: dict[str, list[float]] = {"known": [], "unknown": []}
    answers: set[tuple[int, bytes]] = set()
    await known(), await unknown()  # warm both paths (first template render, first index use)
    for _ in range(TRIES):
        for side, call in (("known", known), ("unknown", unknown)):
            started = time.perf_counter()
            response = await call()
            timings[side].append((time.perf_counter() - started) * 1000)
            answers.add((response.status_code, response.content))
    assert len(answers) == 1, (name, answers)
    medians = statistics.median(timings["known"]), statistics.median(timings["unknown"])
    spread = abs(medians[0] - medians[1]) / max(medians)
    print(f"\n{name}: known {medians[0]:.2f} ms, unknown {medians[1]:.2f} ms, differ by {spread:.0%}")
    return medians


def assert_close(medians: tuple[float, float]) -> None:
    assert abs(medians[0] - medians[1]) / max(medians) < MARGIN, medians


async def test_reset_requests_take_the_same_time_for_known_and_unknown_addresses(auth: AuthApp) -> None:
    known = email()
    await auth.user(known)

    def ask(address: str) -> Callable[[], Awaitable[httpx.Response]]:
        return lambda: auth.client.post("/api/auth/requestPasswordReset", json={"email": address})

    assert_close(await compare("requestPasswordReset", ask(known), ask(email())))


async def test_resends_take_the_same_time_for_known_and_unknown_addresses(auth: AuthApp) -> None:
    known = email()
    assert (await auth.register(known)).status_code == 200  # unverified: the one a resend mails

    def ask(address: str) -> Callable[[], Awaitable[httpx.Response]]:
        return lambda: auth.client.post("/api/user/verify/resend", json={"email": address})

    assert_close(await compare("verify/resend", ask(known), ask(email())))


async def test_registrations_take_the_same_time_for_taken_and_new_addresses(auth: AuthApp) -> None:
    taken = email()
    assert (await auth.register(taken)).status_code == 200

    async def again() -> httpx.Response:
        return await auth.client.post("/api/auth/register", json=registration(taken, STRONG_PASSWORD))

    async def new() -> httpx.Response:
        return await auth.client.post("/api/auth/register", json=registration(email(), STRONG_PASSWORD))

    assert_close(await compare("register", again, new))
