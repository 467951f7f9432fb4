"""The one retry decision and the storable forms of what receivers send, over generated cases."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from webhook_admin.delivery.retry_policy import MAX_RETRY_AFTER_SECONDS, decide
from webhook_admin.delivery.storable import (
    HEADERS_LIMIT,
    TRUNCATED_HEADER,
    storable_body,
    storable_headers,
    storable_text,
)
from webhook_admin.models import DeliveryStatus, ErrorClass

START = datetime(2026, 12, 1, 10, 0, 0)
schedules = st.lists(st.integers(0, 36_000), max_size=8).map(tuple)
failures = st.one_of(
    st.builds(dict, status_code=st.sampled_from([500, 502, 400, 404, 301])),
    st.builds(
        dict,
        status_code=st.sampled_from([429, 503]),
        retry_after=st.one_of(st.none(), st.integers(0, 200_000).map(str), st.just("soon")),
    ),
    st.builds(
        dict,
        error_class=st.sampled_from(
            [ErrorClass.TIMEOUT, ErrorClass.CONNECT, ErrorClass.DNS, ErrorClass.TLS]
            + [ErrorClass.INTERRUPTED]
        ),
    ),
)


@given(schedules, st.lists(failures, min_size=20, max_size=20))
def test_a_delivery_that_keeps_failing_gets_exactly_the_schedule_plus_one_tries(schedule, results):
    at, tries = START, 0
    for result in results:
        tries += 1
        outcome = decide(schedule, tries, at, **result)
        if outcome.status == DeliveryStatus.FAILED:
            break
        assert outcome.status == DeliveryStatus.RETRYING
        wait = (outcome.next_attempt_at - at).total_seconds()
        base = schedule[tries - 1]
        asked = result.get("retry_after")
        if asked and asked.isdigit() and result["status_code"] in (429, 503):
            # Never sooner than asked (up to a day), never later than the larger of the two.
            assert wait >= min(int(asked), MAX_RETRY_AFTER_SECONDS) - 1e-6
            assert wait <= max(base * 1.2, MAX_RETRY_AFTER_SECONDS) + 1e-6
        else:
            assert base * 0.8 - 1e-6 <= wait <= base * 1.2 + 1e-6
        at = outcome.next_attempt_at
    assert tries == len(schedule) + 1


@given(schedules, st.integers(1, 20))
def test_a_success_always_ends_the_delivery(schedule, attempt_number):
    assert decide(schedule, attempt_number, START, succeeded=True).status == "succeeded"


@given(schedules, st.integers(1, 3))
def test_gone_blocked_and_unbuildable_are_never_retried(schedule, attempt_number):
    for result in ({"status_code": 410}, {"error_class": "blocked"}, {"error_class": "envelope"}):
        assert decide(schedule, attempt_number, START, **result).status == "failed"


def test_a_manual_retry_after_the_schedule_is_used_up_gets_one_try():
    schedule = (5, 300)
    assert decide(schedule, 4, START, status_code=500).status == DeliveryStatus.FAILED
    retrying = decide(schedule, 2, START, error_class=ErrorClass.INTERRUPTED)
    assert retrying.next_attempt_at >= START + timedelta(seconds=240)


@given(st.text())
def test_storable_text_is_utf8_without_nul_and_keeps_its_length(text):
    stored = storable_text(text)
    assert "\x00" not in stored and len(stored) == len(text)
    stored.encode("utf-8")  # raises on a lone surrogate


@given(st.binary(max_size=2000), st.integers(0, 3000))
def test_storable_body_is_utf8_without_nul_and_capped(raw, limit):
    stored = storable_body(raw, limit)
    assert "\x00" not in stored and len(stored) <= limit
    stored.encode("utf-8")


# Any name but the marker itself (it has parentheses: never a real header's name).
HEADER_NAMES = st.text(max_size=40).filter(lambda name: name != TRUNCATED_HEADER)


@given(st.dictionaries(HEADER_NAMES, st.text(max_size=9000), max_size=30))
def test_stored_headers_stay_within_the_limit_and_say_what_was_left_out(headers):
    stored = storable_headers(headers)
    marker = stored.pop(TRUNCATED_HEADER, None)
    assert sum(len(k) + len(v) for k, v in stored.items()) <= HEADERS_LIMIT
    total = sum(len(k) + len(v) for k, v in headers.items())
    assert (marker is None) == all(storable_text(name) in stored for name in headers)
    if total <= HEADERS_LIMIT:
        assert marker is None and list(stored.values()) == [
            storable_text(v) for v in headers.values()
        ]
