"""The request we send: the envelope body, its signature, and the headers as recorded."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..models import Event
from ..shared.envelope import encode, envelope
from ..shared.headers import USER_AGENT
from ..shared.signing import sign_with_secrets

SIGNATURE_MASK = "v1,•••"
VALUE_MASK = "•••"
# Header names whose values must never be stored or shown (they carry credentials).
SENSITIVE_HEADERS = {"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key"}


@dataclass(frozen=True)
class OutboundRequest:
    body: bytes
    headers: dict[str, str]
    # The endpoint's custom header names (lower case): their values are secrets.
    secret_names: frozenset[str] = field(default=frozenset())
    # The body as the attempt records it: the event's sensitive values masked.
    masked_body: bytes | None = field(default=None, repr=False)

    @property
    def recorded_body(self) -> bytes:
        return self.body if self.masked_body is None else self.masked_body

    def recorded_headers(self) -> dict[str, str]:
        """The headers as stored on the attempt: signatures, credentials and every custom
        header value masked (an endpoint's custom headers are encrypted at rest)."""
        masked = {}
        for name, value in self.headers.items():
            lower = name.lower()
            if lower == "webhook-signature":
                masked[name] = " ".join(SIGNATURE_MASK for _ in value.split())
            elif lower in SENSITIVE_HEADERS or lower in self.secret_names:
                masked[name] = VALUE_MASK
            else:
                masked[name] = value
        return masked


class EnvelopeError(ValueError):
    """The event cannot be encoded as a request body; no later try will change that."""


def envelope_bytes(event: Event) -> bytes:
    """`{id, type, timestamp, data}` of an Event (or a row with those columns); the exact
    bytes we sign are the bytes we send. EnvelopeError if they cannot be UTF-8 JSON: a lone
    surrogate in a string, NaN or Infinity (not JSON), a value JSON has no form for."""
    value = envelope(event.id, event.type, event.occurred_at, event.data)
    try:
        return encode(value).encode()
    except (UnicodeEncodeError, ValueError, TypeError, RecursionError) as exc:
        raise EnvelopeError(
            f"event {event.id!r} cannot be encoded as UTF-8 JSON: {type(exc).__name__}: {exc}"
        ) from None


def build_request(
    event_id: str,
    body: bytes,
    signing_secrets: list[str],
    custom_headers: dict[str, str],
    timestamp: int,
    recorded_body: bytes | None = None,
) -> OutboundRequest:
    """Sign `body` (the event's envelope bytes) for this attempt."""
    headers = {name: str(value) for name, value in (custom_headers or {}).items()}
    # Ours last, so a custom header can never override the signature or the id.
    headers.update(
        {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": event_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign_with_secrets(signing_secrets, event_id, timestamp, body),
        }
    )
    secret_names = frozenset(name.lower() for name in custom_headers or {})
    return OutboundRequest(body, headers, secret_names, recorded_body)
