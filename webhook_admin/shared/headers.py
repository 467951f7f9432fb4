"""The header names the sender sets itself: the one list. A custom header may not use any
of them (services/endpoints.py); the envelope sets the signature ones (delivery/envelope.py)
and the HTTP sender the transport ones (delivery/http_sender.py)."""

from __future__ import annotations

# What we say we are, on every request (the API reference shows it too).
USER_AGENT = "SoftPOS-Webhooks/1.0 (webhook-admin)"
# Framing and routing: the HTTP sender sets these from the destination and the body.
TRANSPORT_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
# The envelope's: what the receiver verifies and parses by.
ENVELOPE_HEADERS = frozenset(
    {"content-type", "user-agent", "webhook-id", "webhook-timestamp", "webhook-signature"}
)
# Ours to set: a custom header may not replace the signature, the id or the framing.
RESERVED_HEADERS = TRANSPORT_HEADERS | ENVELOPE_HEADERS
