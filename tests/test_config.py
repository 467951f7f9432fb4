"""Settings: validated once at start; production refuses to start without its secrets."""

from __future__ import annotations

import re
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


# --- WEBHOOK_QUEUE_PREFIX: the namespace of our queues and keys in a shared Redis ---------


def prefix(**overrides) -> str:
    return load_settings(production(**overrides)).queue_prefix


def test_queue_prefix_is_derived_from_the_database_and_stable():
    first = prefix(DATABASE_URL="postgresql://app:secret@db.internal/webhooks")
    assert re.fullmatch(r"wa-[0-9a-f]{10}", first)
    assert prefix(DATABASE_URL="postgresql://app:secret@db.internal/webhooks") == first
    # The same database spelled another way: no password, postgres://, default port, options.
    for same in (
        "postgresql://app:rotated@db.internal/webhooks",
        "postgresql://app@db.internal/webhooks",
        "postgres://app:secret@DB.internal:5432/webhooks",
        "postgresql://app:secret@db.internal/webhooks?sslmode=require",
    ):
        assert prefix(DATABASE_URL=same) == first, same
    assert "secret" not in first


def test_two_databases_never_share_a_queue_prefix():
    urls = [
        "postgresql://app@db.internal/webhooks",
        "postgresql://app@db.internal/webhooks_staging",
        "postgresql://app@db2.internal/webhooks",
        "postgresql://app@db.internal:5433/webhooks",
        "postgresql://other@db.internal/webhooks",
        "sqlite:////srv/a/var/webhook_admin.db",
        "sqlite:////srv/b/var/webhook_admin.db",
    ]
    assert len({prefix(DATABASE_URL=url) for url in urls}) == len(urls)


def test_default_sqlite_databases_of_two_checkouts_get_two_prefixes(tmp_path, monkeypatch):
    """The default SQLite file lives in each checkout's var/; a relative path is read from
    the directory the process runs in, as SQLite opens it."""
    assert load_settings(production(), instance_path=str(tmp_path / "a" / "var")).queue_prefix != (
        load_settings(production(), instance_path=str(tmp_path / "b" / "var")).queue_prefix
    )
    monkeypatch.chdir(tmp_path)
    relative = prefix(DATABASE_URL="sqlite:///var/app.db")
    assert relative == prefix(DATABASE_URL=f"sqlite:///{tmp_path}/var/app.db")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert prefix(DATABASE_URL="sqlite:///var/app.db") != relative


def test_an_explicit_queue_prefix_is_used_as_given():
    assert prefix(WEBHOOK_QUEUE_PREFIX="staging") == "staging"
    assert prefix(WEBHOOK_QUEUE_PREFIX=" prod_eu-1 ") == "prod_eu-1"
    assert prefix(WEBHOOK_QUEUE_PREFIX="p" * 40) == "p" * 40
    assert prefix(WEBHOOK_QUEUE_PREFIX="") == prefix()  # empty: derived


@pytest.mark.parametrize("raw", ["has space", "a:b", "dots.not", "ü", "p" * 41, "a/b", "*"])
def test_a_malformed_queue_prefix_is_refused_naming_the_variable(raw):
    with pytest.raises(ConfigError, match="WEBHOOK_QUEUE_PREFIX must be 1-40 letters"):
        load_settings(production(WEBHOOK_QUEUE_PREFIX=raw))


def test_the_default_lease_outlasts_twice_the_longest_attempt_an_endpoint_may_set():
    settings = load_settings(production())
    # An endpoint may set 60 s; the lease must never expire under a live attempt.
    assert settings.lease_duration == 120 and settings.longest_attempt == 60
    assert load_settings(production(WEBHOOK_DELIVERY_TIMEOUT="90")).lease_duration == 180


@pytest.mark.parametrize(("lease", "timeout"), [("10", "15"), ("29", "15"), ("1", "1")])
def test_a_lease_shorter_than_twice_the_delivery_timeout_is_refused(lease, timeout):
    with pytest.raises(ConfigError, match="WEBHOOK_LEASE_SECONDS must be at least twice"):
        load_settings(production(WEBHOOK_LEASE_SECONDS=lease, WEBHOOK_DELIVERY_TIMEOUT=timeout))


def test_an_explicit_lease_caps_every_attempt_at_half_of_it():
    settings = load_settings(production(WEBHOOK_LEASE_SECONDS="30", WEBHOOK_DELIVERY_TIMEOUT="15"))
    assert settings.lease_duration == 30 and settings.longest_attempt == 15


def test_delivery_threads_default_alike_on_both_databases_and_the_setting_wins():
    # worker.py runs one process per core on either database (issue 16): 256 threads each.
    sqlite = production(DATABASE_URL="sqlite:////tmp/webhooks.db")
    postgres = production(DATABASE_URL="postgresql://u@db/webhooks")
    assert load_settings(sqlite).worker_threads == 256
    assert load_settings(postgres).worker_threads == 256
    assert load_settings({**sqlite, "WEBHOOK_WORKER_THREADS": "64"}).worker_threads == 64
    assert load_settings({**postgres, "WEBHOOK_WORKER_THREADS": "300"}).worker_threads == 300


def test_worker_runs_one_process_per_core_on_either_database(monkeypatch):
    import worker

    monkeypatch.setattr(worker.os, "cpu_count", lambda: 3)
    defaults = worker.parse_args([])
    for url in ("sqlite:////tmp/webhooks.db", "postgresql://u@db/webhooks"):
        settings = load_settings(production(DATABASE_URL=url))
        assert worker.process_count(defaults, settings) == 3, url
        chosen = load_settings(production(DATABASE_URL=url, WEBHOOK_WORKER_PROCESSES="2"))
        assert worker.process_count(defaults, chosen) == 2, url
        assert worker.process_count(worker.parse_args(["--processes", "1"]), chosen) == 1, url
