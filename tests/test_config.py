"""Settings: validated once at start; production refuses to start without its secrets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from webhook_admin.config import DEFAULT_RETRY_SCHEDULE, ConfigError, load_settings

GOOD_INGEST = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def production(**overrides):
    environ = {
        "APP_ENV": "production",
        "SECRET_KEY": "s" * 40,
        "WEBHOOK_INGEST_SECRET": GOOD_INGEST,
        "WEBHOOK_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    }
    environ.update(overrides)
    return {k: v for k, v in environ.items() if v is not None}


def test_production_defaults():
    settings = load_settings(production())
    assert settings.retry_schedule == DEFAULT_RETRY_SCHEDULE
    assert settings.delivery_timeout == 15.0
    assert settings.sweep_interval == 30.0
    assert settings.allow_private_networks is False
    assert settings.redis_url == "redis://127.0.0.1:6379/0"


def test_development_allows_private_networks_by_default():
    assert load_settings({"APP_ENV": "development"}).allow_private_networks is True


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"SECRET_KEY": None}, "SECRET_KEY is required"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY is required"),
        ({"WEBHOOK_INGEST_SECRET": None}, "WEBHOOK_INGEST_SECRET is required"),
        ({"WEBHOOK_INGEST_SECRET": "plain-text"}, "must start with 'whsec_'"),
        ({"WEBHOOK_INGEST_SECRET": "whsec_!!notbase64"}, "followed by base64"),
        ({"WEBHOOK_INGEST_SECRET": "whsec_c2hvcnQ="}, "at least 24 bytes"),
        ({"WEBHOOK_ENCRYPTION_KEYS": None}, "WEBHOOK_ENCRYPTION_KEYS is required"),
        ({"WEBHOOK_ENCRYPTION_KEYS": "nope"}, "Fernet keys"),
        ({"APP_ENV": "staging"}, "APP_ENV must be one of"),
        ({"WEBHOOK_RETRY_SCHEDULE": "5,soon"}, "comma-separated whole seconds"),
        ({"WEBHOOK_RETRY_SCHEDULE": "5,-1"}, "negative"),
        ({"WEBHOOK_DELIVERY_TIMEOUT": "0"}, "greater than 0"),
        ({"WEBHOOK_SWEEP_INTERVAL": "often"}, "number of seconds"),
        ({"WEBHOOK_ENDPOINT_BURST": "0"}, "WEBHOOK_ENDPOINT_BURST must be greater than 0"),
        ({"WEBHOOK_ENDPOINT_BURST": "2.5"}, "WEBHOOK_ENDPOINT_BURST must be a whole number"),
        ({"WEBHOOK_ALLOW_PRIVATE_NETWORKS": "maybe"}, "true or false"),
        ({"DATABASE_URL": "mysql://x"}, "sqlite:// or postgresql://"),
    ],
)
def test_refuses_missing_or_malformed_settings_with_a_message_naming_them(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(production(**overrides))


def test_several_ingest_secrets_are_accepted_during_rotation():
    settings = load_settings(production(WEBHOOK_INGEST_SECRET=f"{GOOD_INGEST} {GOOD_INGEST}"))
    assert len(settings.ingest_keys) == 2


def test_postgres_urls_use_the_psycopg_driver():
    settings = load_settings(production(DATABASE_URL="postgres://u@db/webhooks"))
    assert settings.database_url == "postgresql+psycopg://u@db/webhooks"


def test_endpoint_burst_defaults_to_four_times_the_cap_and_one_turns_it_off():
    assert load_settings(production()).endpoint_burst == 4
    assert load_settings(production(WEBHOOK_ENDPOINT_BURST="1")).endpoint_burst == 1


def test_custom_retry_schedule_is_parsed():
    assert load_settings(production(WEBHOOK_RETRY_SCHEDULE="1, 2,3")).retry_schedule == (1, 2, 3)


def test_wsgi_refuses_to_start_in_production_without_secrets():
    result = subprocess.run(
        [sys.executable, "-c", "import wsgi"],
        env={"APP_ENV": "production", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert result.returncode != 0
    assert "SECRET_KEY is required in production" in result.stderr
