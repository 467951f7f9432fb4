"""What a receiver sent, made fit to store: text any database takes, headers of bounded size.

Storage must never refuse what a receiver sent. PostgreSQL refuses NUL in text columns, and
an insert that failed took its whole batch of attempts with it (other endpoints' successes
included, whose receivers then got the same event again). A receiver's headers were stored
uncapped: 99 headers of 64 KB put 6.5 MB into one attempt row."""

from __future__ import annotations

import re

# NUL (PostgreSQL text refuses it) and lone surrogates (not encodable as UTF-8).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"  # what invalid UTF-8 in a body already decodes to
HEADERS_LIMIT = 16 * 1024  # characters of names and values kept per attempt
TRUNCATED_HEADER = "(truncated)"  # not a valid header name: never a receiver's own


def storable_text(value: str) -> str:
    """`value` with NUL and lone surrogates replaced by U+FFFD."""
    return _UNSTORABLE.sub(REPLACEMENT, value)


def storable_body(raw: bytes, limit: int) -> str:
    """The first `limit` characters of a body as text: invalid UTF-8 and NUL become U+FFFD."""
    return storable_text(raw.decode("utf-8", errors="replace")[:limit])


def storable_headers(headers: dict[str, str], limit: int = HEADERS_LIMIT) -> dict[str, str]:
    """Headers as stored: storable text, in arrival order until `limit` characters of names
    and values; what did not fit is named by a `(truncated)` entry."""
    kept: dict[str, str] = {}
    used = dropped = dropped_chars = 0
    for name, value in headers.items():
        size = len(name) + len(value)
        if used + size > limit:
            dropped += 1
            dropped_chars += size
            continue
        kept[storable_text(name)] = storable_text(value)
        used += size
    if dropped:
        kept[TRUNCATED_HEADER] = (
            f"{dropped} header(s) not stored ({dropped_chars:,} characters; "
            f"at most {limit // 1024} KiB of headers are kept)"
        )
    return kept
