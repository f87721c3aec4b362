"""Two auth and two moderation processes behind a real nginx, on the Redis Cluster and one Mongo store.

nginx (deploy/nginx/replicas.conf) balances each service over its two replicas and passes a
request to the other replica only when the first could not be reached or, for idempotent
methods, failed with 502/503/504; a POST a replica may have acted on is never sent twice by
nginx. Auth's moderation POSTs are retried once by auth itself, with an Idempotency-Key.

Auth runs with every moderation check's fail mode `closed`, so a check that got no answer from
moderation shows as a 503 `moderation_unavailable`: "auth never entered its fail mode" is then
"no 503, and the client's `unavailable` counter stayed at 0".

Clients name their address in X-Forwarded-For (they play an outer proxy; nginx appends itself).
The measured figures (revocation p99s, failed in-flight requests) are printed: `-s` shows them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from harness import (
    ROOT,
    LocalCluster,
    ModerationHandle,
    Server,
    find_nginx,
    free_port,
    mongo_uri,
    start_auth,
    start_moderation,
    start_nginx,
    start_service,
)
from harness.smtp import SmtpServer, mail_env, start_smtp
from services.auth.moderation_client.fail_modes import CHECKS
from tests.e2e.conftest import BAN_DEADLINE_S, LIMITS, Stack, assert_banned, assert_limited, fresh_email
from tests.integration.support import REVOCATION_DEADLINE_S, STRONG_PASSWORD

NGINX = find_nginx()
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (`make tools` installs it)")

TEMPLATE = ROOT / "deploy" / "nginx" / "replicas.conf"
ROUNDS = 30
LOGIN_MAX = int(LIMITS["LOGIN_MAX"])
NEW_PASSWORD = "a different long passphrase for the replica tests"
# Published bounds (README, "Forward auth and its staleness bound").
REVOCATION_BOUND_S = 1.0  # VERIFY_MAX_STALENESS
BAN_BOUND_S = 0.5  # the ban feed's poll, plus the feed's own latency
LOAD_WORKERS = 6


@dataclass
class Replicas:
    nginx: Server
    auth_url: str  # nginx, in front of both auth replicas
    moderation_url: str  # nginx, in front of both moderation replicas
    auths: list[Server]
    auth_env: dict[str, str]
    management: list[int]  # each auth replica's metrics port
    moderations: list[Server]
    moderation_env: dict[str, str]
    admin_key: str
    smtp: SmtpServer
    work: Path

    def direct(self, index: int) -> str:
        return self.auths[index].url

    def address(self, index: int) -> str:
        return f"127.0.0.1:{self.auths[index].port}"

    def restart_auth(self, index: int) -> None:
        env = {**self.auth_env, "AUTH_PORT": str(self.auths[index].port)}
        env["AUTH_MANAGEMENT_PORT"] = str(self.management[index])
        self.auths[index] = start_auth(env, self.work)


def render(
    prefix: Path, auth: list[int], moderation: list[int], auth_port: int, moderation_port: int
) -> Path:
    """deploy/nginx/replicas.conf for these ports; every placeholder must be filled."""

    def servers(ports: list[int]) -> str:
        return "\n        ".join(f"server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;" for p in ports)

    text = TEMPLATE.read_text()
    for placeholder, value in (
        ("@AUTH_SERVERS@", servers(auth)),
        ("@MODERATION_SERVERS@", servers(moderation)),
        ("@AUTH_PORT@", str(auth_port)),
        ("@MODERATION_PORT@", str(moderation_port)),
        ("@PREFIX@", str(prefix)),
    ):
        assert placeholder in text, f"{TEMPLATE} lacks {placeholder}"
        text = text.replace(placeholder, value)
    assert not re.search(r"@[A-Z_]+@", text), "unfilled placeholders"
    conf = prefix / "nginx.conf"
    conf.write_text(text)
    return conf


def all_closed() -> str:
    return ",".join(f"{check}=closed" for check in CHECKS)


@pytest.fixture(scope="module")
def replicas(mongo: Server, redis_cluster: LocalCluster) -> Iterator[Replicas]:
    assert NGINX is not None
    module_started = time.monotonic()
    # Not pytest's tmp_path: nginx's workers (as `nobody` when run by root) must traverse it.
    work = Path(tempfile.mkdtemp(prefix="authgate-replicas-"))
    os.chmod(work, 0o755)
    smtp = start_smtp("plain")
    started: list[Server] = []
    try:
        moderation_env = {
            **LIMITS,
            "USE_REDIS_CLUSTER": "true",
            "REDIS_URI": redis_cluster.seeds_uri(2),
            "REDIS_KEY_PREFIX": f"r{secrets.token_hex(4)}",
        }
        first: ModerationHandle = start_moderation(work, moderation_env)
        started.append(first.server)
        second_port = free_port()
        second_env = {**first.env, "MODERATION_PORT": str(second_port)}
        second = start_service(
            "services.moderation", second_port, second_env, work / f"moderation-{second_port}.log"
        )
        started.append(second)

        auth_ports = [free_port(), free_port()]
        auth_port, moderation_port = free_port(), free_port()
        prefix = work / "nginx"
        prefix.mkdir(mode=0o755)
        conf = render(prefix, auth_ports, [first.server.port, second_port], auth_port, moderation_port)
        nginx = start_nginx(NGINX, prefix, conf, auth_port)
        started.append(nginx)

        auth_env = {
            "AUTHGATE_ENV": "test",
            "JWT_SECRET": secrets.token_hex(32),
            "JWT_REFRESH_SECRET": secrets.token_hex(32),
            "TOTP_ENCRYPTION_KEY": secrets.token_hex(32),
            "MONGO_URI": mongo_uri(mongo.port, f"replicas_{secrets.token_hex(4)}"),
            "MONGO_TIMEOUT": "2000",
            "ALLOW_REGISTRATION": "true",
            **first.auth_env(),
            "MODERATION_URL": f"http://127.0.0.1:{moderation_port}",
            "MODERATION_FAIL_MODE": all_closed(),
            **LIMITS,
            "REFRESH_MAX": "1000000",
            "TRUST_PROXY": "2",  # nginx, and the test client playing an outer proxy
            "TRUSTED_PROXIES": "127.0.0.1/32",
            **mail_env(smtp, ALLOW_PASSWORD_RESET="true", ALLOW_UNVERIFIED_EMAIL_LOGIN="true"),
            "RESET_PASSWORD_MAX": "1000000",
            "ARGON2_MEMORY_KIB": "1024",
            "ARGON2_TIME_COST": "1",
            "LOG_LEVEL": "INFO",
        }
        management = [free_port(), free_port()]
        auths = []
        for port, metrics_port in zip(auth_ports, management, strict=True):
            env = {**auth_env, "AUTH_PORT": str(port), "AUTH_MANAGEMENT_PORT": str(metrics_port)}
            auths.append(start_auth(env, work))
            started.append(auths[-1])
        yield Replicas(
            nginx=nginx,
            auth_url=nginx.url,
            moderation_url=f"http://127.0.0.1:{moderation_port}",
            auths=auths,
            auth_env=auth_env,
            management=management,
            moderations=[first.server, second],
            moderation_env=second_env,
            admin_key=first.admin_key,
            smtp=smtp,
            work=work,
        )
        for server in auths:  # restarted ones are new objects
            if server not in started:
                started.append(server)
    finally:
        for server in reversed(started):
            server.stop()
        smtp.stop()
        print(f"\n[replicas] module time {time.monotonic() - module_started:.1f} s (cluster shared)")


# Clients ---------------------------------------------------------------------------------------


def from_ip(ip: str) -> dict[str, str]:
    return {"X-Forwarded-For": ip}


async def register(client: httpx.AsyncClient, email: str, ip: str) -> httpx.Response:
    body = {
        "name": "Replica",
        "email": email,
        "password": STRONG_PASSWORD,
        "confirm_password": STRONG_PASSWORD,
    }
    return await client.post("/api/auth/register", json=body, headers=from_ip(ip))


async def login(
    client: httpx.AsyncClient, email: str, ip: str, password: str = STRONG_PASSWORD
) -> httpx.Response:
    body = {"email": email, "password": password, "refresh_token_in_body": True}
    return await client.post("/api/auth/login", json=body, headers=from_ip(ip))


async def refresh(client: httpx.AsyncClient, token: str, ip: str) -> httpx.Response:
    return await client.post("/api/auth/refresh", json={"refresh_token": token}, headers=from_ip(ip))


async def verify(client: httpx.AsyncClient, token: str) -> int:
    response = await client.get("/verify", headers={"Authorization": f"Bearer {token}"})
    return response.status_code


async def user(client: httpx.AsyncClient) -> tuple[str, dict[str, Any]]:
    email = fresh_email("replica")
    assert (await register(client, email, Stack.fresh_ip())).status_code == 200
    response = await login(client, email, Stack.fresh_ip())
    assert response.status_code == 200, response.text
    return email, response.json()


async def until(check: Callable[[], Awaitable[bool]], what: str, deadline_s: float) -> float:
    """Seconds until `check()` holds, polled every 5 ms; fails past the deadline."""
    started = time.perf_counter()
    while not await check():
        if time.perf_counter() - started > deadline_s:
            raise AssertionError(f"{what}: not within {deadline_s} s")
        await asyncio.sleep(0.005)
    return time.perf_counter() - started


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


def report(name: str, samples: list[float], bound_s: float) -> str:
    line = (
        f"[replicas] {name}: p50 {statistics.median(samples) * 1000:.0f} ms, "
        f"p99 {p99(samples) * 1000:.0f} ms, max {max(samples) * 1000:.0f} ms over {len(samples)} rounds "
        f"(published bound {bound_s * 1000:.0f} ms)"
    )
    print(line)
    return line


async def metrics(port: int) -> dict[str, float]:
    """The moderation client's counters of one auth replica, from its management port."""
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r'authgate_moderation_calls_total\{result="(\w+)"\} ([0-9.e+]+)', line)
        if match:
            found[match.group(1)] = float(match.group(2))
        match = re.match(r"authgate_moderation_degraded_answers(?:_total)? ([0-9.e+]+)", line)
        if match:
            found["degraded"] = float(match.group(1))
    return found


@contextlib.asynccontextmanager
async def clients(*urls: str) -> AsyncIterator[list[httpx.AsyncClient]]:
    made = [httpx.AsyncClient(base_url=url, timeout=30) for url in urls]
    try:
        yield made
    finally:
        for client in made:
            await client.aclose()


# (a) The sliding windows are shared ----------------------------------------------------------------


async def test_a_login_flood_over_both_replicas_is_limited_and_banned_as_by_one(replicas: Replicas) -> None:
    attacker = Stack.fresh_ip()
    async with clients(replicas.auth_url, replicas.direct(0), replicas.direct(1)) as (edge, a, b):
        answers = [
            await login(edge, fresh_email("nobody"), attacker, "wrong password, sorry") for _ in range(6)
        ]
        served = {response.headers.get("x-upstream") for response in answers}
        assert served == {replicas.address(0), replicas.address(1)}, served  # both replicas took part
        assert [r.status_code for r in answers[:LOGIN_MAX]] == [401] * LOGIN_MAX
        for response in answers[LOGIN_MAX : LOGIN_MAX + 2]:
            assert_limited(response, LOGIN_MAX)
        assert_banned(answers[-1])  # BAN_INTERVAL=3: the third refusal bans, as on one replica
        for replica in (a, b):  # both replicas refuse the address now
            assert_banned(await login(replica, fresh_email("nobody"), attacker))


# (b) Revocations made on one replica reach /verify on the other -----------------------------------


async def test_ban_logout_and_password_reset_on_one_replica_reach_the_other(replicas: Replicas) -> None:
    headers = {"Authorization": f"Bearer {replicas.admin_key}"}
    async with (
        clients(replicas.direct(0), replicas.direct(1)) as (a, b),
        httpx.AsyncClient(base_url=replicas.moderation_url, headers=headers, timeout=10) as admin,
    ):
        bans: list[float] = []
        # One user per round: a ban's session revocation runs in the background and may run after
        # the unban; it ends the sessions opened before the ban began plus 500 ms of clock skew
        # (sessions.BAN_CLOCK_TOLERANCE_MS), and the next round's sign-in can fall within those.
        for _ in range(ROUNDS):
            _, signed_in = await user(a)
            token, user_id = signed_in["token"], signed_in["user"]["id"]
            await b_accepts(b, token)
            # B may have just polled the feed: ban at a random point of its poll cycle.
            await asyncio.sleep(secrets.randbelow(500) / 1000)
            banned = await admin.post(
                "/v1/bans",
                json={"subject": f"user:{user_id}", "reason": "replica test", "duration_seconds": 60},
            )
            assert banned.status_code == 201, banned.text

            async def b_refuses(token: str = token) -> bool:
                return await verify(b, token) == 403

            bans.append(await until(b_refuses, "B refusing a banned user", BAN_DEADLINE_S))
            assert (await admin.delete(f"/v1/bans/user:{user_id}")).status_code == 200

        logouts: list[float] = []
        email, _ = await user(a)
        for _ in range(ROUNDS):
            token = (await login(a, email, Stack.fresh_ip())).json()["token"]
            await b_accepts(b, token)
            out = await a.post("/api/auth/logout", headers={"Authorization": f"Bearer {token}"})
            assert out.status_code == 200, out.text

            async def b_refuses_logout(token: str = token) -> bool:
                return await verify(b, token) == 401

            logouts.append(
                await until(b_refuses_logout, "B refusing a logged-out token", REVOCATION_DEADLINE_S)
            )

        resets: list[float] = []
        for _ in range(ROUNDS):  # one user each: a reset link goes to one address once a minute
            email, signed_in = await user(a)
            token, user_id = signed_in["token"], signed_in["user"]["id"]
            await b_accepts(b, token)
            mails_before = len(replicas.smtp.sink.received)
            asked = await a.post(
                "/api/auth/requestPasswordReset", json={"email": email}, headers=from_ip(Stack.fresh_ip())
            )
            assert asked.status_code == 200, asked.text
            link = await reset_link(replicas.smtp, email, mails_before)
            body = {
                "userId": user_id,
                "token": link,
                "password": NEW_PASSWORD,
                "confirm_password": NEW_PASSWORD,
            }
            done = await a.post("/api/auth/resetPassword", json=body, headers=from_ip(Stack.fresh_ip()))
            assert done.status_code == 200, done.text

            async def b_refuses_reset(token: str = token) -> bool:
                return await verify(b, token) == 401

            resets.append(
                await until(b_refuses_reset, "B refusing a token after a reset", REVOCATION_DEADLINE_S)
            )

    report("ban on A -> refused by /verify on B", bans, BAN_BOUND_S)
    report("logout on A -> refused by /verify on B", logouts, REVOCATION_BOUND_S)
    report("password reset on A -> refused by /verify on B", resets, REVOCATION_BOUND_S)


async def b_accepts(b: httpx.AsyncClient, token: str) -> None:
    async def accepted() -> bool:
        return await verify(b, token) == 200

    await until(accepted, "B accepting a fresh token", BAN_DEADLINE_S)


async def reset_link(smtp: SmtpServer, email: str, seen: int) -> str:
    """The token of the reset mail to `email` among the mails after the first `seen`."""
    for _ in range(1000):
        for received in smtp.sink.received[seen:]:
            if received.recipients != [email]:
                continue
            for part in received.message.walk():
                if part.get_content_type() == "text/plain":
                    payload = part.get_payload(decode=True)
                    text = payload.decode() if isinstance(payload, bytes) else str(payload)
                    found = re.search(r"/reset-password\?(\S+)", text)  # not the verification mail's link
                    if found:
                        return str(parse_qs(found.group(1))["token"][0])
        await asyncio.sleep(0.01)
    raise AssertionError(f"no reset mail to {email}")


# (c) kill -9 of an auth replica under load ----------------------------------------------------------


@dataclass
class Load:
    """What the clients were told: acknowledged registrations and rotations, and every failure."""

    registered: list[str] = field(default_factory=list)
    chains: dict[int, str] = field(default_factory=dict)  # chain -> its newest acknowledged refresh token
    ok: int = 0
    failures: list[tuple[float, float, int, str, str]] = field(
        default_factory=list
    )  # start, end, status, upstream, what
    in_flight: int = 0

    async def send(self, what: str, call: Awaitable[httpx.Response]) -> httpx.Response | None:
        started = time.monotonic()
        self.in_flight += 1
        try:
            response = await call
        except httpx.HTTPError as exc:
            self.failures.append((started, time.monotonic(), 0, type(exc).__name__, what))
            return None
        finally:
            self.in_flight -= 1
        if response.status_code != 200:
            upstream = response.headers.get("x-upstream", "")
            self.failures.append((started, time.monotonic(), response.status_code, upstream, what))
            return None
        self.ok += 1
        return response


async def worker(edge: httpx.AsyncClient, load: Load, worker_id: int, stop_at: float) -> None:
    chain = 0
    while time.monotonic() < stop_at:
        email = fresh_email("load")
        if await load.send("register", register(edge, email, Stack.fresh_ip())) is None:
            continue
        load.registered.append(email)
        signed_in = await load.send("login", login(edge, email, Stack.fresh_ip()))
        if signed_in is None:
            continue
        chain += 1
        key = worker_id * 100_000 + chain
        load.chains[key] = signed_in.json()["refresh_token"]
        for _ in range(3):
            rotated = await load.send("refresh", refresh(edge, load.chains[key], Stack.fresh_ip()))
            if rotated is None:  # its fate is unknown: the chain is not reused (a replay would be reuse)
                load.chains.pop(key)
                break
            load.chains[key] = rotated.json()["refresh_token"]


async def test_kill_an_auth_replica_under_login_and_refresh_load(replicas: Replicas) -> None:
    load = Load()
    victim = replicas.address(0)
    async with clients(replicas.auth_url) as (edge,):
        stop_at = time.monotonic() + 5.0
        tasks = [asyncio.create_task(worker(edge, load, n, stop_at)) for n in range(LOAD_WORKERS)]
        await asyncio.sleep(2.0)
        in_flight_at_kill = load.in_flight
        killed_at = time.monotonic()
        os.kill(replicas.auths[0].proc.pid, signal.SIGKILL)
        replicas.auths[0].proc.wait(timeout=10)
        await asyncio.gather(*tasks)

        print(
            f"\n[replicas] auth kill -9 under load: {load.ok} requests answered 200, "
            f"{len(load.failures)} failed (in flight at the kill: {in_flight_at_kill}); "
            f"{len(load.registered)} registrations and {len(load.chains)} rotation chains acknowledged"
        )
        for failure in load.failures:
            print(f"[replicas]   failed: {failure[4]} status {failure[2]} upstream {failure[3]}")
        assert len(load.failures) <= in_flight_at_kill, load.failures
        for started, _, status, upstream, what in load.failures:
            assert started <= killed_at, f"{what} started after the kill failed"
            assert status in (0, 502), (status, what)
            assert status == 0 or victim in upstream, (upstream, what)
        assert load.registered and load.chains

        # Every acknowledged registration and rotation survived (the other replica serves them).
        for email in load.registered:
            response = await login(edge, email, Stack.fresh_ip())
            assert response.status_code == 200, (email, response.text)
        for token in load.chains.values():
            response = await refresh(edge, token, Stack.fresh_ip())
            assert response.status_code == 200, response.text
    replicas.restart_auth(0)


# (d) kill -9 of a moderation replica --------------------------------------------------------------


async def test_kill_a_moderation_replica_and_auth_never_enters_its_fail_mode(replicas: Replicas) -> None:
    before = [await metrics(port) for port in replicas.management]
    load = Load()
    async with clients(replicas.auth_url) as (edge,):
        stop_at = time.monotonic() + 4.0
        tasks = [asyncio.create_task(worker(edge, load, n, stop_at)) for n in range(LOAD_WORKERS)]
        await asyncio.sleep(1.5)
        # Frozen first, so calls are surely in flight on it when it dies (a kill between two
        # calls would only show nginx skipping a refused connection).
        os.kill(replicas.moderations[0].proc.pid, signal.SIGSTOP)
        await asyncio.sleep(0.3)
        replicas.moderations[0].stop(sig_kill=True)
        await asyncio.gather(*tasks)
        ready = [await edge.get("/readyz") for _ in range(4)]
    after = [await metrics(port) for port in replicas.management]
    retried = sum(m.get("retried", 0) - b.get("retried", 0) for m, b in zip(after, before, strict=True))
    unavailable = sum(
        m.get("unavailable", 0) - b.get("unavailable", 0) for m, b in zip(after, before, strict=True)
    )
    print(
        f"\n[replicas] moderation kill -9 under load: {load.ok} answered, {len(load.failures)} failed, "
        f"{int(retried)} moderation calls retried by auth, {int(unavailable)} without an answer"
    )
    assert load.failures == [], load.failures
    assert unavailable == 0
    assert retried >= 1  # the calls in flight on the killed replica were answered by the other
    for response in ready:
        assert response.status_code == 200 and response.json()["checks"]["moderation"] == "ok", response.text
