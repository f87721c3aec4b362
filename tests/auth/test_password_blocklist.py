"""Common passwords are refused even when long enough for zxcvbn; an optional breach range check.

The blocklist is checked after NFKC and case folding, after undoing leetspeak and after
stripping appended digits and symbols. The breach check (HIBP's k-anonymity range API shape)
runs against a small real HTTP server started here, and fails open when it is down.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from prometheus_client import REGISTRY

from harness import free_port
from services.auth.blocklist import common_passwords
from services.auth.passwords import PasswordPolicy
from tests.auth.conftest import STRONG_PASSWORD, AuthApp

REPORTED = [
    "correcthorsebatterystaple",
    "P@ssw0rd2024!!!!",
    "Welcome123456789!",
    "Password1234567!",
    "1q2w3e4r5t6y7u8i9o",
]
BREACHED = "an unremarkable passphrase someone leaked"


def email() -> str:
    return f"user-{secrets.token_hex(4)}@example.com"


def test_the_list_is_large_and_loaded_once() -> None:
    assert len(common_passwords()) >= 20_000
    assert common_passwords() is common_passwords()


@pytest.mark.parametrize("password", REPORTED)
async def test_reported_common_passwords_are_refused(auth: AuthApp, password: str) -> None:
    response = await auth.register(email(), password)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "password_policy" and body["rule"] == "common"


@pytest.mark.parametrize(
    "password",
    [
        "".join(chr(ord(c) + 0xFEE0) for c in "PASSWORD123456789"),  # fullwidth: NFKC first
        "C0rr3ctH0rs3B4tt3ryStapl3",  # leetspeak undone
        "correct horse battery staple",  # spacing does not hide it
        "dr4g0n!!!!2024#########",  # leet plus appended symbols and digits
        "1l0v3y0u1234567890",  # 1 -> i
    ],
)
def test_variants_of_common_passwords_are_refused(password: str) -> None:
    violation = PasswordPolicy(min_length=15, min_strength=0).check(password, [])
    assert violation is not None and violation.rule == "common", password


@pytest.mark.parametrize(
    "password",
    [
        STRONG_PASSWORD,
        "purple monkey dishwasher kettle",
        "vV8#qLm2!xZr9Tk",
        "dragon83!9#2@71$4%%7",  # a listed word, but the appended tail is long and random
    ],
)
def test_uncommon_passwords_pass(password: str) -> None:
    assert PasswordPolicy(min_length=15, min_strength=3).check(password, []) is None


# Breach range check -----------------------------------------------------------------------


class RangeHandler(BaseHTTPRequestHandler):
    """HIBP's range API shape: GET /<5 hex> -> 'SUFFIX:COUNT' lines, with padding entries."""

    requests: list[str] = []

    def do_GET(self) -> None:
        prefix = self.path.rsplit("/", 1)[-1].upper()
        type(self).requests.append(prefix)
        digest = hashlib.sha1(BREACHED.encode()).hexdigest().upper()
        lines = ["0" * 35 + ":0", "F" * 35 + ":3"]
        if digest.startswith(prefix):
            lines.append(f"{digest[5:]}:42")
        body = "\r\n".join(lines).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def range_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    RangeHandler.requests = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/range"
    finally:
        server.shutdown()
        server.server_close()


def failures() -> float:
    return REGISTRY.get_sample_value("authgate_password_breach_check_failures_total") or 0.0


async def test_breached_password_is_refused_and_only_a_prefix_is_sent(
    app_factory: Callable[..., Any], range_server: str
) -> None:
    async with app_factory(PASSWORD_BREACH_CHECK_URL=range_server) as auth:
        response = await auth.register(email(), BREACHED)
        assert response.status_code == 422, response.text
        assert response.json()["rule"] == "breached"
        assert (await auth.register(email(), STRONG_PASSWORD)).status_code == 200
    digest = hashlib.sha1(BREACHED.encode()).hexdigest().upper()
    assert RangeHandler.requests[0] == digest[:5]
    assert all(len(prefix) == 5 for prefix in RangeHandler.requests)


async def test_breach_check_fails_open_when_the_service_is_down(app_factory: Callable[..., Any]) -> None:
    before = failures()
    async with app_factory(PASSWORD_BREACH_CHECK_URL=f"http://127.0.0.1:{free_port()}/range") as auth:
        response = await auth.register(email(), BREACHED)
        assert response.status_code == 200, response.text
    assert failures() == before + 1


async def test_breach_check_is_off_by_default(auth: AuthApp) -> None:
    assert auth.settings.password_breach_check_url is None
    assert (await auth.register(email(), BREACHED)).status_code == 200
