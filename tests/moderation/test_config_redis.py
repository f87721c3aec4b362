"""LibreChat's Redis variables: one URI or a cluster's seeds, credentials, CA, key prefix.

A comma-separated `REDIS_URI` is a cluster even without `USE_REDIS_CLUSTER` (LibreChat's rule);
anything malformed or half-configured stops startup with one line naming the variable.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from services.moderation.redis_config import RedisConfig
from services.moderation.settings import ModerationSettings, load_settings
from shared.config import ConfigError, Env
from tests.moderation.conftest import API_KEYS

SECRET = "s3cr3t-not-echoed"


def settings_from(**values: str) -> ModerationSettings:
    return load_settings(Env([{"AUTHGATE_ENV": "test", "MODERATION_API_KEYS": API_KEYS, **values}]))


def redis_of(**values: str) -> RedisConfig:
    redis = settings_from(**values).redis
    assert redis is not None
    return redis


def test_one_uri_is_standalone_as_before() -> None:
    redis = redis_of(REDIS_URI="redis://127.0.0.1:6379/2")
    assert not redis.cluster and redis.uris == ("redis://127.0.0.1:6379/2",) and redis.options() == {}
    assert settings_from(REDIS_URI="redis://127.0.0.1:6379/2").redis_uri == "redis://127.0.0.1:6379/2"


def test_a_list_is_a_cluster_even_without_use_redis_cluster() -> None:
    redis = redis_of(REDIS_URI="redis://127.0.0.1:7001, redis://127.0.0.1:7002,redis://10.0.0.3")
    assert redis.cluster
    assert redis.seeds == (("127.0.0.1", 7001), ("127.0.0.1", 7002), ("10.0.0.3", 6379))


def test_use_redis_cluster_makes_one_uri_a_seed() -> None:
    redis = redis_of(REDIS_URI="redis://127.0.0.1:7001", USE_REDIS_CLUSTER="true")
    assert redis.cluster and redis.seeds == (("127.0.0.1", 7001),)


def test_credentials_from_the_variables_or_the_uri() -> None:
    redis = redis_of(
        REDIS_URI="redis://127.0.0.1:7001,redis://127.0.0.1:7002",
        REDIS_USERNAME="moderation",
        REDIS_PASSWORD=SECRET,
    )
    assert (redis.username, redis.password) == ("moderation", SECRET)
    carried = redis_of(REDIS_URI=f"redis://moderation:{SECRET}@127.0.0.1:7001", USE_REDIS_CLUSTER="yes")
    assert (carried.username, carried.password) == ("moderation", SECRET)
    standalone = redis_of(REDIS_URI="redis://127.0.0.1:6379/0", REDIS_PASSWORD=SECRET)
    assert standalone.options() == {"password": SECRET}


def test_a_ca_file_for_rediss(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    redis = redis_of(REDIS_URI="rediss://10.0.0.1:7001,rediss://10.0.0.2:7001", REDIS_CA=str(ca))
    assert redis.tls and redis.options() == {"ssl_ca_certs": str(ca)}


def test_redis_key_prefix_is_librechats_name_for_the_prefix() -> None:
    assert settings_from(REDIS_KEY_PREFIX="lc").redis_prefix == "lc"
    assert settings_from(REDIS_KEY_PREFIX="lc", MODERATION_REDIS_PREFIX="lc").redis_prefix == "lc"
    assert settings_from().redis_prefix == "mod"


@pytest.mark.parametrize(
    ("values", "variable"),
    [
        ({"USE_REDIS_CLUSTER": "true"}, "REDIS_URI"),
        ({"USE_REDIS_CLUSTER": "maybe", "REDIS_URI": "redis://127.0.0.1:7001"}, "USE_REDIS_CLUSTER"),
        ({"REDIS_URI": "redis://127.0.0.1:7001,"}, "REDIS_URI"),
        ({"REDIS_URI": "redis://127.0.0.1:7001,127.0.0.1:7002"}, "REDIS_URI"),
        ({"REDIS_URI": "redis://127.0.0.1:7001,redis://127.0.0.1:notaport"}, "REDIS_URI"),
        ({"REDIS_URI": "redis://127.0.0.1:7001,redis://127.0.0.1:99999"}, "REDIS_URI"),
        ({"REDIS_URI": "redis://127.0.0.1:7001,redis://:7002"}, "REDIS_URI"),
        ({"REDIS_URI": "redis://127.0.0.1:7001/3", "USE_REDIS_CLUSTER": "true"}, "REDIS_URI"),
        ({"REDIS_URI": "unix:///tmp/redis.sock", "USE_REDIS_CLUSTER": "true"}, "REDIS_URI"),
        ({"REDIS_URI": "redis://127.0.0.1:7001,rediss://127.0.0.1:7002"}, "REDIS_URI"),
        ({"REDIS_URI": f"redis://a:{SECRET}@h1:7001,redis://h2:7002"}, "REDIS_URI"),
        ({"REDIS_URI": "redis://h1:7001,redis://h2:7002", "REDIS_USERNAME": "moderation"}, "REDIS_PASSWORD"),
        ({"REDIS_URI": f"redis://:{SECRET}@h1:7001", "REDIS_PASSWORD": "other"}, "REDIS_PASSWORD"),
        ({"REDIS_URI": "redis://h1:7001,redis://h2:7002", "REDIS_CA": "/etc/ca.pem"}, "REDIS_CA"),
        ({"REDIS_URI": "rediss://h1:7001,rediss://h2:7002", "REDIS_CA": "/nonexistent/ca.pem"}, "REDIS_CA"),
        ({"REDIS_PASSWORD": SECRET}, "REDIS_PASSWORD"),
        ({"REDIS_KEY_PREFIX": "lc", "MODERATION_REDIS_PREFIX": "mod"}, "REDIS_KEY_PREFIX"),
        ({"REDIS_KEY_PREFIX": "a{b}"}, "REDIS_KEY_PREFIX"),
    ],
)
def test_malformed_or_half_configured_redis_names_its_variable(values: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from(**values)
    assert info.value.name == variable
    assert SECRET not in str(info.value)
