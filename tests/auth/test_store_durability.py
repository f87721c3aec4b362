"""Writes that decide authentication survive a failover and reads never see a lagging copy:
journaled, majority-acknowledged writes (`MONGO_WRITE_CONCERN`) and primary reads, whatever the
URI asks for; several replicas starting at once on a fresh database build each index once."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import pytest
from pymongo import MongoClient
from pymongo.read_preferences import ReadPreference

from harness import Server, free_port, mongo_uri, spawn_auth, wait_port
from services.auth.settings import load_settings
from services.auth.store import Store
from shared.config import ConfigError, Env
from tests.auth.test_store_uri import production
from tests.integration.support import auth_env


def test_majority_by_default_a_number_when_asked_never_unacknowledged(tmp_path: Path) -> None:
    uri = "mongodb://db:27017/authgate"
    assert load_settings(Env([production(uri)]), root=tmp_path).mongo_write_concern == "majority"
    two = {**production(uri), "MONGO_WRITE_CONCERN": "2"}
    assert load_settings(Env([two]), root=tmp_path).mongo_write_concern == 2
    for bad in ("0", "-1", "all", "1.5"):
        with pytest.raises(ConfigError) as info:
            load_settings(Env([{**production(uri), "MONGO_WRITE_CONCERN": bad}]), root=tmp_path)
        assert info.value.name == "MONGO_WRITE_CONCERN"


async def test_the_options_reach_the_driver_whatever_the_uri_says(mongo: Server) -> None:
    uri = mongo_uri(mongo.port, f"durable_{secrets.token_hex(3)}")
    lax = f"{uri}&w=1&readPreference=secondaryPreferred" if "?" in uri else f"{uri}?w=1"
    for concern in ("majority", 2):
        store = Store(lax, write_concern=concern)
        try:
            for repository in (store.users, store.sessions, store.user_state, store.tokens, store.outbox):
                collection = repository._c
                assert collection.write_concern.document == {"w": concern, "j": True}
                assert collection.read_preference == ReadPreference.PRIMARY
        finally:
            await store.close()


def test_replicas_starting_together_on_a_fresh_database_build_each_index_once(
    mongo: Server, tmp_path: Path
) -> None:
    database = f"together_{secrets.token_hex(3)}"
    env = auth_env(mongo.port, MONGO_URI=mongo_uri(mongo.port, database))
    # Both spawned before either is waited for: their index builds overlap.
    first = spawn_auth({**env, "AUTH_PORT": str(free_port())}, tmp_path)
    second = spawn_auth({**env, "AUTH_PORT": str(free_port())}, tmp_path)
    try:
        for server in (first, second):
            wait_port(server.port, 30, server.proc)
            assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
            assert "Traceback" not in server.log() and '"level": "error"' not in server.log()
        client: MongoClient[dict[str, object]]
        with MongoClient(mongo_uri(mongo.port, database)) as client:
            names = [index["name"] for index in client[database]["users"].list_indexes()]
        assert len(names) == len(set(names)) and "email_1" in names
    finally:
        first.stop()
        second.stop()
