"""WEBHOOK_RETENTION_DAYS: days, fractions allowed (a soak runs with minutes); bad values are
refused with a message naming the variable; the purge's cadence follows the retention."""

from __future__ import annotations

import pytest

from tests.test_config import production
from webhook_admin.config import ConfigError, load_settings
from webhook_admin.delivery.retention_thread import purge_interval


def test_defaults_to_30_days_and_takes_fractions():
    assert load_settings(production()).retention_days == 30
    assert load_settings(production(WEBHOOK_RETENTION_DAYS="0.5")).retention_days == 0.5
    assert load_settings(production(WEBHOOK_RETENTION_DAYS=" 7 ")).retention_days == 7


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("thirty", "must be a number of days"),
        ("2m", "must be a number of days"),
        ("0", "must be at least 0.001 days"),
        ("-1", "must be at least 0.001 days"),
        ("0.0001", "must be at least 0.001 days"),
        ("nan", "must be at least 0.001 days"),
        ("inf", "must be at least 0.001 days"),
    ],
)
def test_refuses_bad_retention_values(raw, message):
    with pytest.raises(ConfigError, match=f"WEBHOOK_RETENTION_DAYS {message}"):
        load_settings(production(WEBHOOK_RETENTION_DAYS=raw))


def test_the_purge_runs_hourly_and_ten_times_per_retention_period():
    assert purge_interval(30) == 3600
    assert purge_interval(0.0035) == pytest.approx(30.24)  # ~5 minutes: every 30 s
    assert purge_interval(0.001) == pytest.approx(8.64)
