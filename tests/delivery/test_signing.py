"""Standard Webhooks signatures: the reference vector, verification rules, rotation."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from webhook_admin.shared.signing import SignatureError, sign, sign_with_secrets, verify

REFERENCE_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
REFERENCE_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
REFERENCE_TS = 1614265330
REFERENCE_BODY = b'{"test": 2432232314}'
REFERENCE_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
REFERENCE_KEY = base64.b64decode(REFERENCE_SECRET.removeprefix("whsec_"))


def test_signs_the_standard_webhooks_reference_vector():
    assert sign(REFERENCE_KEY, REFERENCE_ID, REFERENCE_TS, REFERENCE_BODY) == REFERENCE_SIGNATURE


def test_verifies_the_reference_vector_within_the_tolerance():
    verify(
        (REFERENCE_KEY,),
        REFERENCE_ID,
        str(REFERENCE_TS),
        REFERENCE_SIGNATURE,
        REFERENCE_BODY,
        now=REFERENCE_TS + 299,
    )


def test_any_of_several_offered_signatures_may_match():
    header = "v1,AAAA v1,bm90IGl0 " + REFERENCE_SIGNATURE
    verify(
        (REFERENCE_KEY,), REFERENCE_ID, str(REFERENCE_TS), header, REFERENCE_BODY, now=REFERENCE_TS
    )


@pytest.mark.parametrize(
    ("msg_id", "ts", "header", "body", "now", "message"),
    [
        (
            REFERENCE_ID,
            str(REFERENCE_TS),
            REFERENCE_SIGNATURE,
            REFERENCE_BODY + b" ",
            REFERENCE_TS,
            "no webhook-signature matches",
        ),
        (
            "msg_other",
            str(REFERENCE_TS),
            REFERENCE_SIGNATURE,
            REFERENCE_BODY,
            REFERENCE_TS,
            "no webhook-signature matches",
        ),
        (
            REFERENCE_ID,
            str(REFERENCE_TS),
            REFERENCE_SIGNATURE,
            REFERENCE_BODY,
            REFERENCE_TS + 301,
            "tolerance",
        ),
        (
            REFERENCE_ID,
            "yesterday",
            REFERENCE_SIGNATURE,
            REFERENCE_BODY,
            REFERENCE_TS,
            "whole seconds",
        ),
        (
            REFERENCE_ID,
            str(REFERENCE_TS),
            "v2," + REFERENCE_SIGNATURE[3:],
            REFERENCE_BODY,
            REFERENCE_TS,
            "no webhook-signature matches",
        ),
        (None, str(REFERENCE_TS), REFERENCE_SIGNATURE, REFERENCE_BODY, REFERENCE_TS, "missing"),
    ],
)
def test_rejects_what_does_not_verify(msg_id, ts, header, body, now, message):
    with pytest.raises(SignatureError, match=message):
        verify((REFERENCE_KEY,), msg_id, ts, header, body, now=now)


def test_rotation_header_carries_one_signature_per_secret_each_verifiable():
    new = "whsec_" + base64.b64encode(b"n" * 32).decode()
    header = sign_with_secrets([new, REFERENCE_SECRET], REFERENCE_ID, REFERENCE_TS, REFERENCE_BODY)
    assert len(header.split()) == 2
    when = datetime.fromtimestamp(REFERENCE_TS, tz=UTC)
    for secret in (new, REFERENCE_SECRET):
        # the library's verify() checks the timestamp against its clock; compare signatures
        expected = Webhook(secret).sign(REFERENCE_ID, when, REFERENCE_BODY.decode())
        assert expected in header.split()
