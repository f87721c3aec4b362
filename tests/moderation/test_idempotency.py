"""An event sent again with the same `Idempotency-Key` counts once and gets its first answer back.

Over HTTP against each store (memory, standalone Redis, the Redis Cluster), and on the stores
directly with the marker the engine derives from the key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from shared.moderation.policy import BanPolicy
from shared.moderation.store import Store, SubjectOp, WindowOp
from tests.moderation.conftest import Moderation, fresh_account, fresh_ip

NOW = 1_800_000_000_000


async def post(client: httpx.AsyncClient, key: str | None, **body: Any) -> httpx.Response:
    headers = {"idempotency-key": key} if key is not None else {}
    return await client.post("/v1/events", json=body, headers=headers)


async def test_a_repeated_key_counts_once(auth_client: httpx.AsyncClient) -> None:
    ip = fresh_ip()  # LOGIN_MAX=3 in the fixture's settings
    first = await post(auth_client, "req-1.a", type="login", ip=ip)
    assert first.status_code == 200, first.text
    for _ in range(4):  # four retries of the same call: none counts
        again = await post(auth_client, "req-1.a", type="login", ip=ip)
        assert again.status_code == 200, again.text
        assert again.json() == first.json()
    answers = [(await post(auth_client, f"req-{n}.b", type="login", ip=ip)).json() for n in range(3)]
    assert [a["allowed"] for a in answers] == [True, True, False]  # 1 + 2 fill the limit of 3


async def test_a_refused_event_is_refused_again_without_scoring_twice(
    auth_client: httpx.AsyncClient,
) -> None:
    ip, account = fresh_ip(), fresh_account()
    for n in range(3):
        assert (await post(auth_client, f"fill-{n}", type="login", ip=ip)).json()["allowed"]
    refused = await post(auth_client, "over.1", type="login", ip=ip, account=account)
    assert refused.json()["allowed"] is False
    again = await post(auth_client, "over.1", type="login", ip=ip, account=account)
    assert again.json() == refused.json()
    after = await post(auth_client, "over.2", type="login", ip=ip, account=account)
    # The refused retry added no score: the next refusal scores once more than the first did.
    assert after.json()["allowed"] is False
    assert after.json()["score"] == refused.json()["score"] + 1


async def test_the_key_is_bound_to_the_event(auth_client: httpx.AsyncClient) -> None:
    """The same key with another body is another event: a key never answers for someone else."""
    ip = fresh_ip()
    await post(auth_client, "shared-key", type="login", ip=ip)
    other = await post(auth_client, "shared-key", type="login", ip=fresh_ip())
    assert other.json()["remaining"] == 2
    same_ip = await post(auth_client, "shared-key", type="register", ip=ip)
    assert same_ip.json()["allowed"] is True


async def test_no_key_counts_every_time(auth_client: httpx.AsyncClient) -> None:
    ip = fresh_ip()
    answers = [(await post(auth_client, None, type="login", ip=ip)).json() for _ in range(4)]
    assert [a["allowed"] for a in answers] == [True, True, True, False]


@pytest.mark.parametrize("key", [b"", b"x" * 129, b"a b", "é".encode(), b"k\tey"])
async def test_a_malformed_key_is_refused(moderation: Moderation, key: bytes) -> None:
    async with moderation.client() as client:
        response = await client.post(
            "/v1/events", json={"type": "login", "ip": fresh_ip()}, headers={b"idempotency-key": key}
        )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_input"
    assert "Idempotency-Key" in response.json()["message"]


async def test_the_openapi_document_names_the_header(moderation: Moderation) -> None:
    async with moderation.client(None) as client:
        document = (await client.get("/openapi.json")).json()
    names = [p["name"] for p in document["paths"]["/v1/events"]["post"].get("parameters", [])]
    assert "Idempotency-Key" in names


async def test_the_store_replays_a_marked_op(store_factory: Callable[..., Store]) -> None:
    store = store_factory(BanPolicy(interval=100))
    await store.open()
    window = WindowOp("login", "hit", 2, 60_000)
    op = SubjectOp("ip:100.64.9.9", windows=(window,), score_on_exceed=1, once="k1.e0")
    first = (await store.apply([op], NOW))[0]
    again = (await store.apply([op], NOW + 5))[0]
    assert not first.replayed and again.replayed
    assert (again.now_ms, again.windows, again.score) == (first.now_ms, first.windows, first.score)
    other = (await store.apply([SubjectOp("ip:100.64.9.9", windows=(window,), once="k2.e0")], NOW + 6))[0]
    assert other.windows[0].count == 2  # the replay did not count: the second marker is the second hit
    unmarked = (await store.apply([SubjectOp("ip:100.64.9.9", windows=(window,))], NOW + 7))[0]
    assert unmarked.windows[0].exceeded
