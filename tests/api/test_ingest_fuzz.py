"""Ingest under fuzzed bodies and ids: never a 5xx, every refusal a JSON error, and every
accepted event one we can encode and send.

The bodies are JSON text built here, not by json.dumps of a value, so they can hold what a
producer's bug or an attacker could send: lone surrogate escapes (and raw surrogate bytes),
NUL and control characters, duplicate keys, NaN and Infinity, integers of thousands of
digits, floats out of range, deep nesting, wrong types and over-long fields.
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import event as note_event
from hypothesis import strategies as st
from sqlalchemy import func, select

from tests.conftest import signed_headers
from webhook_admin.delivery.envelope import envelope_bytes
from webhook_admin.extensions import db
from webhook_admin.models import Event

FUZZ = settings(
    max_examples=400,
    deadline=None,
    database=None,  # nothing written into the repository
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --- JSON text -------------------------------------------------------------------------

ODD_CHARACTERS = [
    "\ud83d",  # a high surrogate alone
    "\ude00",  # a low surrogate alone
    "\x00",
    "\x01",
    "\x1f",
    "\x7f",
    "\u202e",  # right-to-left override
    "\u05e9\u05dc\u05d5\u05dd",  # Hebrew, right to left
    "\U0001f600",  # an emoji: a surrogate pair when escaped
    "\ufeff",
    "\u2028",
    '"',
    "\\",
    "\n",
]
strings = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=8),
    st.lists(
        st.one_of(st.sampled_from(ODD_CHARACTERS), st.characters(codec="utf-8")), max_size=8
    ).map("".join),
)


@st.composite
def string_literals(draw, values=strings) -> bytes:
    """A JSON string: escaped as ASCII (`\\ud83d`, `\\u0000`), or raw UTF-8, where a
    surrogate is written as its three bytes (not UTF-8; Python's json reads it anyway)."""
    value = draw(values)
    if draw(st.booleans()):
        return json.dumps(value).encode()
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def float_literal(value: float) -> bytes:
    if math.isnan(value):
        return b"NaN"
    if math.isinf(value):
        return b"Infinity" if value > 0 else b"-Infinity"
    return repr(value).encode()


numbers = st.one_of(
    st.integers(-(2**70), 2**70).map(lambda n: str(n).encode()),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1]).map(lambda n: str(n).encode()),
    st.integers(1, 6000).map(lambda digits: b"-" * (digits % 2) + b"9" * digits),
    st.floats().map(float_literal),
    st.sampled_from([b"1e400", b"-1e400", b"1e-400", b"1.7976931348623157e308", b"-0.0"]),
)
scalars = st.one_of(
    st.sampled_from([b"true", b"false", b"null"]), numbers, string_literals(), string_literals()
)


def json_object(members: list[tuple[bytes, bytes]]) -> bytes:
    return b"{" + b", ".join(key + b": " + value for key, value in members) + b"}"


@st.composite
def objects(draw, values) -> bytes:
    """An object whose keys may be odd, and sometimes one of them twice."""
    members = draw(st.lists(st.tuples(string_literals(), values), max_size=4))
    if members and draw(st.integers(0, 4)) == 4:
        members.append((members[0][0], draw(values)))
    return json_object(members)


def arrays(values):
    return st.lists(values, max_size=4).map(lambda items: b"[" + b", ".join(items) + b"]")


values = st.recursive(scalars, lambda inner: arrays(inner) | objects(inner), max_leaves=12)


@st.composite
def deep(draw) -> bytes:
    """A value nested around the depth limit (32 levels for the whole body)."""
    levels = draw(st.integers(25, 40) | st.integers(0, 2000))
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a": ', b"}")]))
    return opener * levels + draw(scalars) + closer * levels


def fixed_string(value: str) -> bytes:
    return json.dumps(value).encode()


@st.composite
def times(draw) -> bytes:
    """Any ISO 8601 time from year 1 to 9999, naive, UTC (`Z`) or at an offset (which can
    take it out of range in UTC)."""
    value = draw(st.sampled_from([datetime.min, datetime.max]) | st.datetimes()).isoformat()
    offset = draw(st.sampled_from(["", "Z", "+00:00", "+14:00", "-12:00", "+05:30"]))
    return fixed_string(value + offset)


def mostly(valid, fuzzed):
    """`valid` two times in three, so that events get through often enough to be checked."""
    return st.integers(0, 2).flatmap(lambda n: fuzzed if n == 2 else valid)


fields = {
    b"type": mostly(
        st.just(fixed_string("transaction.approved")),
        st.sampled_from(["webhook.test", "no.such.type", "", "t" * 121]).map(fixed_string)
        | string_literals()
        | values,
    ),
    b"data": mostly(objects(values), objects(deep()) | values | deep()),
    b"merchant_id": mostly(
        st.sampled_from(["m_1042", "m" * 120]).map(fixed_string),
        st.just(fixed_string("m" * 121)) | string_literals() | values,
    ),
    b"occurred_at": mostly(
        st.just(fixed_string("2026-11-28T10:00:00Z")) | times(),
        st.just(fixed_string("yesterday")) | string_literals() | values,
    ),
}


@st.composite
def event_bodies(draw) -> bytes:
    """Mostly an event object with some of its fields, fuzzed or not; sometimes anything.
    (Rare choices are the highest of a range: Hypothesis draws 0 more often than 1 in n.)"""
    if draw(st.integers(0, 9)) == 9:
        return draw(values | deep())
    members = [(b'"type"', draw(fields[b"type"]))] if draw(st.integers(0, 9)) < 9 else []
    for name in (b"data", b"merchant_id", b"occurred_at"):
        if draw(st.booleans()):
            members.append((b'"' + name + b'"', draw(fields[name])))
    if draw(st.integers(0, 4)) == 4:
        members.append(draw(st.tuples(string_literals(), values)))
    if members and draw(st.integers(0, 9)) == 9:
        members.append(draw(st.sampled_from(members)))  # the same key twice
    return json_object(draw(st.permutations(members)))


# --- the property ------------------------------------------------------------------------


def post(client, body: bytes, event_id: str):
    """Signed correctly; the id goes in as a server passes it on (any characters)."""
    headers = signed_headers(body, event_id)
    del headers["webhook-id"]
    return client.post(
        "/api/v1/events",
        data=body,
        headers=headers,
        environ_overrides={"HTTP_WEBHOOK_ID": event_id},
    )


def events_stored() -> int:
    db.session.rollback()  # see what the request committed
    return db.session.scalar(select(func.count()).select_from(Event))


def post_and_check(client, body: bytes, event_id: str):
    """The property: no 5xx; a refusal is a JSON error and stores nothing; an accepted event
    can be encoded as its delivery's body."""
    before = events_stored()
    response = post(client, body, event_id)
    error = response.get_json(silent=True) or {}
    note_event(f"{response.status_code} {str(error.get('error'))[:22]}")  # in the statistics
    assert response.status_code < 500, response.get_data(as_text=True)[:500]
    if response.status_code >= 400:
        assert response.is_json, response.get_data(as_text=True)[:500]
        assert error["error"]
        # Counted, not looked up: an id PostgreSQL cannot hold (NUL) cannot be queried.
        assert events_stored() == before
        return response
    assert response.status_code == 202, error
    assert events_stored() == before + 1
    event = db.session.get(Event, event_id)
    envelope = json.loads(envelope_bytes(event).decode("utf-8"))
    assert envelope["data"] == event.data
    return response


@FUZZ
@given(body=event_bodies())
def test_fuzzed_bodies_get_a_json_answer_and_accepted_ones_can_be_sent(app, client, body):
    post_and_check(client, body, f"evt_{uuid.uuid4().hex}")


ID_CHARACTERS = st.one_of(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E),
    st.sampled_from([" ", "\t", "\r", "\n", "\x00", "\x7f", "\x85", "\xe9", "\xff"]),
)


@FUZZ
@given(prefix=st.text(ID_CHARACTERS, max_size=300))
def test_fuzzed_webhook_ids_are_refused_or_usable_as_a_header(app, client, prefix):
    from webhook_admin.delivery.envelope import build_request

    event_id = prefix + uuid.uuid4().hex[:8]  # unique, so never the 200 of an earlier one
    response = post_and_check(client, b'{"type": "transaction.approved"}', event_id)
    if response.status_code == 202:
        request = build_request(event_id, b"{}", ["whsec_" + "a" * 44], {}, 0)
        value = request.headers["webhook-id"]
        assert value.isascii() and value.isprintable() and " " not in value
        assert len(value) <= 255
