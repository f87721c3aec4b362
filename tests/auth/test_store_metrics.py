"""Metrics say what happened: a store outage counts in authgate_store_errors_total, and a refresh
of a user deleted behind the service's back is not counted as a rotation."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from harness import free_port
from services.auth.store import store_errors
from shared.errors import StoreUnavailable
from tests.auth.conftest import AuthApp


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_store_outage_is_counted() -> None:
    from pymongo import AsyncMongoClient

    before = sample("authgate_store_errors_total", {"service": "auth"})
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        f"mongodb://127.0.0.1:{free_port()}/?retryWrites=false", serverSelectionTimeoutMS=200
    )
    try:
        with pytest.raises(StoreUnavailable):
            async with store_errors():
                await client["authgate"]["users"].find_one({})
    finally:
        await client.close()
    assert sample("authgate_store_errors_total", {"service": "auth"}) == before + 1


async def test_refresh_of_a_deleted_user_is_not_a_rotation(auth: AuthApp) -> None:
    body = await auth.user("metrics.deleted@example.com")
    await auth.collection("users").delete_one({"email": "metrics.deleted@example.com"})
    rotated = sample("authgate_refreshes_total", {"outcome": "rotated"})
    response = await auth.refresh(body["refresh_token"])
    assert response.status_code == 401
    assert sample("authgate_refreshes_total", {"outcome": "rotated"}) == rotated
