"""kill -9 of the auth service, then of its store, during a registration load: no acknowledged loss.

Registration answers the same for new and existing addresses, so the test keeps
its own ledger: every address that got a 200 must exist in `users` afterwards
(read straight from the store) and log in through the restarted service. The
store is a private secantusd-py, restarted on the same port and data directory after
its kill; argon2 runs at test strength so the load is mostly store writes.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from pymongo import MongoClient

from harness import Server, eventually_sync, free_port, mongo_uri, start_mongo
from tests.integration.support import STRONG_PASSWORD, auth_env, start_auth

WORKERS = 6
PHASE_S = 1.0  # load kept up after each phase's first 30 acknowledgements, before the next crash
DB = "crash"


@dataclass
class Ledger:
    acked: list[tuple[float, str]] = field(default_factory=list)  # (monotonic time, email)
    outcomes: Counter[str] = field(default_factory=Counter)
    bad: list[str] = field(default_factory=list)

    def acked_since(self, moment: float) -> int:
        return sum(1 for at, _ in list(self.acked) if at >= moment)


class Load:
    """Concurrent registrations with unique addresses until stopped."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ledger = Ledger()
        self.stop = threading.Event()
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(WORKERS)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=15) as client:
            while not self.stop.is_set():
                with self._lock:
                    n = next(self._ids)
                email = f"load-{n}@example.com"
                body = {
                    "name": "Load",
                    "email": email,
                    "password": STRONG_PASSWORD,
                    "confirm_password": STRONG_PASSWORD,
                }
                try:
                    response = client.post("/api/auth/register", json=body)
                except httpx.TransportError as exc:
                    self.ledger.outcomes[type(exc).__name__] += 1
                    time.sleep(0.02)  # the service is down: do not spin
                    continue
                if response.status_code == 200:
                    self.ledger.acked.append((time.monotonic(), email))
                    self.ledger.outcomes["200"] += 1
                elif response.status_code == 503 and response.json().get("code") == "store_unavailable":
                    self.ledger.outcomes["503"] += 1
                    time.sleep(0.02)
                else:
                    self.ledger.bad.append(f"{response.status_code} {response.text[:200]}")


@pytest.fixture
def private_store(tmp_path: Path) -> Iterator[dict[str, Server]]:
    state = {"store": start_mongo(tmp_path / "mongo-data")}
    try:
        yield state
    finally:
        state["store"].stop(sig_kill=True)


def test_no_acknowledged_registration_is_lost(tmp_path: Path, private_store: dict[str, Server]) -> None:
    store = private_store["store"]
    port = free_port()
    env = auth_env(
        store.port,
        MONGO_URI=mongo_uri(store.port, DB),
        AUTH_PORT=str(port),
        ARGON2_MEMORY_KIB="1024",
        ARGON2_TIME_COST="1",
        PASSWORD_MIN_STRENGTH="0",
        MONGO_TIMEOUT="1000",
        LOG_LEVEL="WARNING",
    )
    servers = [start_auth(env, tmp_path)]
    try:
        with Load(f"http://127.0.0.1:{port}") as load:
            ledger = load.ledger
            eventually_sync(
                lambda: ledger.acked_since(0) >= 30, "registrations before the first crash", timeout=60
            )
            time.sleep(PHASE_S)

            crashes = [time.monotonic()]
            servers[-1].stop(sig_kill=True)  # kill -9 the auth service mid-load
            restarted_at = time.monotonic()
            servers.append(start_auth(env, tmp_path))
            eventually_sync(
                lambda: ledger.acked_since(restarted_at) >= 30,
                "registrations after auth restarted",
                timeout=60,
            )
            time.sleep(PHASE_S)

            crashes.append(time.monotonic())
            store.stop(sig_kill=True)  # kill -9 the store mid-load
            time.sleep(0.3)
            store = private_store["store"] = start_mongo(tmp_path / "mongo-data", port=store.port)
            back_at = time.monotonic()
            eventually_sync(
                lambda: ledger.acked_since(back_at) >= 30,
                "registrations after the store restarted",
                timeout=90,
            )

        assert not ledger.bad, ledger.bad[:10]
        acked = {email for _, email in ledger.acked}
        client: MongoClient[dict[str, object]] = MongoClient(
            f"mongodb://127.0.0.1:{store.port}/?retryWrites=false", serverSelectionTimeoutMS=20_000
        )
        try:
            stored = {doc["email"] for doc in client[DB].users.find({}, {"email": 1})}
        finally:
            client.close()
        lost = sorted(acked - stored)
        assert not lost, f"{len(lost)} of {len(acked)} acknowledged registrations lost: {lost[:10]}"

        # And they are usable: the last ones acknowledged before each crash log in.
        latest = [
            email
            for crash in crashes
            for email in [email for at, email in sorted(ledger.acked) if at < crash][-5:]
        ]
        with httpx.Client(base_url=servers[-1].url, timeout=30) as client_http:
            for email in latest:
                response = client_http.post(
                    "/api/auth/login", json={"email": email, "password": STRONG_PASSWORD}
                )
                assert response.status_code == 200, (email, response.text)
        # The faults were felt: refused or failed calls besides the acknowledged ones.
        assert ledger.outcomes.total() > ledger.outcomes["200"], ledger.outcomes
        print(f"registrations: {dict(ledger.outcomes)}, acknowledged {len(acked)}")
    finally:
        for server in servers:
            server.stop()
    for server in servers[1:]:
        assert "Traceback" not in server.log(), server.log()[-3000:]
