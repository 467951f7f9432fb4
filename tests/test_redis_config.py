"""Redis settings: one server (REDIS_URL) or Sentinel (REDIS_SENTINELS + REDIS_SENTINEL_MASTER),
validated at start with errors that name the variable."""

from __future__ import annotations

import pytest
from redis.sentinel import SentinelConnectionPool

from tests.test_config import production
from webhook_admin.config import ConfigError, load_settings
from webhook_admin.queues import make_redis, redis_target

SENTINELS = "10.0.0.5:26379, 10.0.0.6:26379,[fd00::7]:26380"


def test_sentinels_and_master_name_are_parsed():
    settings = load_settings(
        production(
            REDIS_SENTINELS=SENTINELS,
            REDIS_SENTINEL_MASTER="webhooks",
            REDIS_SENTINEL_PASSWORD="sentinel-pw",
            REDIS_PASSWORD="data-pw",
        )
    )
    assert settings.redis_sentinels == (
        ("10.0.0.5", 26379),
        ("10.0.0.6", 26379),
        ("fd00::7", 26380),
    )
    assert settings.redis_sentinel_master == "webhooks"
    assert settings.redis_url == ""
    assert (settings.redis_sentinel_password, settings.redis_password) == ("sentinel-pw", "data-pw")
    # Neither password in the repr (a random Fernet key could contain "pw", not these).
    assert "sentinel-pw" not in repr(settings) and "data-pw" not in repr(settings)


def test_the_sentinel_client_finds_the_master_through_the_sentinels_with_their_password():
    settings = load_settings(
        production(
            REDIS_SENTINELS=SENTINELS,
            REDIS_SENTINEL_MASTER="webhooks",
            REDIS_SENTINEL_PASSWORD="sentinel-pw",
            REDIS_PASSWORD="data-pw",
        )
    )
    client = make_redis(settings)  # nothing connects until the first command
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "webhooks"
    assert pool.connection_kwargs["password"] == "data-pw"
    sentinel_clients = pool.sentinel_manager.sentinels
    assert [c.connection_pool.connection_kwargs["port"] for c in sentinel_clients] == [
        26379,
        26379,
        26380,
    ]
    assert {c.connection_pool.connection_kwargs["password"] for c in sentinel_clients} == {
        "sentinel-pw"
    }
    assert redis_target(settings) == (
        "sentinel webhooks via 10.0.0.5:26379,10.0.0.6:26379,fd00::7:26380"
    )


def test_one_server_stays_the_default_and_its_password_never_reaches_the_logs():
    settings = load_settings(production(REDIS_URL="redis://:hunter2@redis.internal:6379/2"))
    assert settings.redis_sentinels == () and settings.redis_password is None
    assert redis_target(settings) == "redis://***@redis.internal:6379/2"
    assert make_redis(settings).connection_pool.connection_kwargs["password"] == "hunter2"
    settings = load_settings(production(REDIS_PASSWORD="pw", REDIS_URL="redis://r:6379/0"))
    assert make_redis(settings).connection_pool.connection_kwargs["password"] == "pw"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"REDIS_SENTINELS": SENTINELS, "REDIS_URL": "redis://r:6379/0"},
            "REDIS_URL and REDIS_SENTINELS are both set",
        ),
        ({"REDIS_SENTINELS": SENTINELS}, "REDIS_SENTINEL_MASTER is required with REDIS_SENTINELS"),
        ({"REDIS_SENTINEL_MASTER": "webhooks"}, "REDIS_SENTINEL_MASTER is set but REDIS_SENTINELS"),
        ({"REDIS_SENTINEL_PASSWORD": "pw"}, "REDIS_SENTINEL_PASSWORD is set but REDIS_SENTINELS"),
        ({"REDIS_SENTINELS": "10.0.0.5"}, "REDIS_SENTINELS must be comma-separated host:port"),
        ({"REDIS_SENTINELS": "10.0.0.5:port"}, "REDIS_SENTINELS must be comma-separated host"),
        ({"REDIS_SENTINELS": "10.0.0.5:70000"}, "REDIS_SENTINELS must be comma-separated host"),
        ({"REDIS_SENTINELS": ":26379"}, "REDIS_SENTINELS must be comma-separated host"),
        ({"REDIS_SENTINELS": "a:1,,b:2"}, "REDIS_SENTINELS must be comma-separated host"),
        ({"REDIS_SENTINELS": "a:1,a:1"}, "REDIS_SENTINELS names a:1 twice"),
        (
            {"REDIS_SENTINELS": "a:1", "REDIS_SENTINEL_MASTER": "my master"},
            "REDIS_SENTINEL_MASTER must not contain spaces",
        ),
        (
            {"REDIS_PASSWORD": "pw", "REDIS_URL": "redis://:other@r:6379/0"},
            "REDIS_PASSWORD is set and REDIS_URL carries a password too",
        ),
    ],
)
def test_a_malformed_redis_setting_is_refused_naming_the_variable(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(production(**overrides))
