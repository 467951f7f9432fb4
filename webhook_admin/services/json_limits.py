"""Parse an ingest body into JSON we can store and send again, or say why not.

Python's `json` accepts more than JSON and more than we can keep: NaN and Infinity, lone
surrogate escapes (`"\\ud83d"`), integers of any size, duplicate keys, any depth. What we
accept is stored, then re-encoded as UTF-8 for every delivery, so anything that cannot make
that trip is refused here, at the door, with the place where it is (a JSON path).
Pure functions: no app, no database.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from typing import Any

# Levels of objects and arrays, the body's own object counting as the first. Real events
# are a few levels deep. A 256 KiB body of `[[[[...` made Python's parser raise
# RecursionError (a 500), and the envelope we send is as deep as the body: every receiver's
# parser would have to walk it too.
MAX_DEPTH = 32
# Integers must fit in a signed 64-bit integer: most receivers (Go, Java, Rust, databases)
# decode them into one. Python refuses to convert more than 4,300 digits (a ValueError: it
# was a 500) and converts fewer in quadratic time. 19 digits is the most an int64 has.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT64_MAX_DIGITS = len(str(INT64_MAX))
_PATH_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}\Z")


class JSONLimitError(ValueError):
    """The body is not JSON we accept; the message says what and where."""


class _Refused:
    """What a parse hook returns for a value it refuses: the walk reports it with its path
    (the hooks are called without knowing where they are)."""

    def __init__(self, reason: str):
        self.reason = reason


def _parse_int(digits: str) -> int | _Refused:
    # Look at the digit string first: a huge integer is refused without converting it.
    if len(digits.lstrip("-")) <= INT64_MAX_DIGITS:
        value = int(digits)
        if INT64_MIN <= value <= INT64_MAX:
            return value
    return _Refused(
        f"integer {_excerpt(digits)} does not fit in a signed 64-bit integer"
        f" ({INT64_MIN} to {INT64_MAX})"
    )


def _parse_float(text: str) -> float | _Refused:
    value = float(text)
    if math.isinf(value):  # 1e400: beyond the largest double
        return _Refused(f"number {_excerpt(text)} is too large for a 64-bit float")
    return value


def _parse_constant(name: str) -> _Refused:
    # NaN, Infinity and -Infinity: Python's json reads them, JSON has no such numbers.
    return _Refused(f"{name} is not a JSON number")


def _object(pairs: list[tuple[str, Any]]) -> dict | _Refused:
    # Parsers disagree on which of two equal keys wins (first, last, error); we store what
    # we parsed and send it re-encoded, so a receiver could read another value than the
    # producer meant. Refuse instead of choosing.
    result = dict(pairs)
    if len(result) == len(pairs):
        return result
    counts = Counter(key for key, _ in pairs)
    return _Refused(f"duplicate key {_quoted(next(k for k, n in counts.items() if n > 1))}")


def _string_problem(text: str) -> str | None:
    if "\x00" in text:
        # PostgreSQL text and JSON values cannot hold U+0000; refused on SQLite too, so
        # both databases accept the same events.
        return "contains NUL (\\u0000), which the database cannot store"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            return (
                f"contains a lone surrogate (\\u{ord(text[exc.start]):04x}),"
                " which cannot be encoded as UTF-8"
            )
    return None


def loads(body: bytes) -> Any:
    """The body's JSON value; JSONLimitError if it is not JSON, or not JSON we keep."""
    try:
        value = json.loads(
            body,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
            object_pairs_hook=_object,
        )
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise JSONLimitError(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise JSONLimitError(f"body is nested deeper than {MAX_DEPTH} levels") from None
    check(value)
    return value


def check(value: Any) -> None:
    """JSONLimitError naming something in `value` (as parsed by `loads`'s hooks) that cannot
    be stored and re-encoded, and where: too deep, a refused number or object, a string or
    key with NUL or a lone surrogate."""
    # No recursion (depth is what is checked). Each entry links to its parent's, so a path
    # is only spelled out for the error message.
    stack = [(value, 1, None, None)]
    while stack:
        entry = stack.pop()
        item, depth = entry[0], entry[1]
        if isinstance(item, str):
            problem = _string_problem(item)
            if problem:
                raise JSONLimitError(f"string at {_path(entry)} {problem}")
        elif isinstance(item, _Refused):
            raise JSONLimitError(f"{item.reason} at {_path(entry)}")
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise JSONLimitError(f"{_path(entry)} is nested deeper than {MAX_DEPTH} levels")
            if isinstance(item, list):
                stack.extend((child, depth + 1, entry, i) for i, child in enumerate(item))
                continue
            for key, child in item.items():
                problem = _string_problem(key)
                if problem:
                    raise JSONLimitError(f"key {_quoted(key)} in {_path(entry)} {problem}")
                stack.append((child, depth + 1, entry, key))


def _path(entry: tuple) -> str:
    """`$.data.items[2]["odd key"]`: where an entry of `check`'s walk is."""
    steps = []
    while entry[2] is not None:
        step = entry[3]
        if isinstance(step, int):
            steps.append(f"[{step}]")
        elif _PATH_NAME.match(step):
            steps.append(f".{step}")
        else:
            steps.append(f"[{_quoted(step)}]")
        entry = entry[2]
    return "$" + "".join(reversed(steps))


def _quoted(key: str) -> str:
    """A key as a JSON string, ASCII only (surrogates and NUL escaped), shortened: it goes
    into an error message and a log line."""
    return json.dumps(key if len(key) <= 40 else key[:40] + "...")


def _excerpt(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:12]}...{text[-4:]} ({len(text)} characters)"
