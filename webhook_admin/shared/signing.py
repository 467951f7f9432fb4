"""Standard Webhooks signatures (https://www.standardwebhooks.com/), both directions."""

from __future__ import annotations

import base64
import hashlib
import hmac

from ..config import parse_whsec

TOLERANCE_SECONDS = 5 * 60


class SignatureError(ValueError):
    """The request is not signed by a key we accept; the message says why (safe to show)."""


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`."""
    to_sign = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sign_with_secrets(secrets: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """One signature per `whsec_` secret, space-separated (rotation sends two)."""
    return " ".join(sign(parse_whsec("secret", s), msg_id, timestamp, body) for s in secrets)


def verify(
    keys: tuple[bytes, ...],
    msg_id: str | None,
    timestamp: str | None,
    signature_header: str | None,
    body: bytes,
    now: int,
) -> None:
    """Raise SignatureError unless one of the signatures matches one of the keys, in time."""
    if not msg_id or not timestamp or not signature_header:
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        ts = int(timestamp)
    except ValueError:
        raise SignatureError("webhook-timestamp must be whole seconds since the epoch") from None
    if abs(now - ts) > TOLERANCE_SECONDS:
        raise SignatureError("webhook-timestamp is outside the 5 minute tolerance")
    offered = [
        part.split(",", 1)[1]
        for part in signature_header.split()
        if part.startswith("v1,") and "," in part
    ]
    for key in keys:
        expected = sign(key, msg_id, ts, body).split(",", 1)[1]
        # compare_digest on every candidate: constant time for each comparison.
        if any(hmac.compare_digest(expected.encode(), o.encode()) for o in offered):
            return
    raise SignatureError("no webhook-signature matches")
