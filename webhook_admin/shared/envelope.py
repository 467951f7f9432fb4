"""The webhook envelope `{id, type, timestamp, data}` and its one encoding.

The worker sends it (delivery/envelope.py) and the event docs show it (services/catalog_docs.py):
one function each, so the published example is byte for byte what a receiver gets."""

from __future__ import annotations

import json
from datetime import datetime


def envelope(event_id: str, event_type: str, occurred_at: datetime, data) -> dict:
    return {
        "id": event_id,
        "type": event_type,
        "timestamp": occurred_at.isoformat(timespec="milliseconds") + "Z",
        "data": data,
    }


def encode(value: dict) -> str:
    """Compact UTF-8 JSON, no NaN or Infinity (not JSON): the bytes signed are the bytes sent.
    Raises what json.dumps raises (ValueError, TypeError, RecursionError)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
