"""Card and personal data in event payloads: schema marks, masking, the PAN guard, and the
text scan for what receivers send back.

An event type's JSON Schema marks a field with `"x-sensitive": "pan"` (a card number) or
`"pii"` (a name, an email, a phone...). At ingest the marked values are taken out of the
payload: `events.data` keeps a masked copy (what pages, the API and attempt records show)
and the values themselves go, encrypted as one MultiFernet token, to
`events.sensitive_encrypted`. The worker puts them back (once per event) to build the bytes
it signs and sends. Pure functions: no Flask, no database."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

PAN = "pan"
PII = "pii"
MARKS = (PAN, PII)
MASK = "••••"
# What the claim returns for an event whose sensitive values were erased after delivery.
ERASED = "erased"
# 13-19 digits, optionally separated by single spaces or dashes, not inside a longer number.
PAN_LIKE = re.compile(r"(?<![\d])\d(?:[ -]?\d){12,18}(?![\d])")
EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@([A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+)")

Path = list  # keys (str) and indices (int) from `data` down to a value


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def _pan_digits(text: str) -> Iterator[re.Match]:
    """Matches in `text` that look like a card number: 13-19 digits passing Luhn."""
    for match in PAN_LIKE.finditer(text):
        if luhn_valid(re.sub(r"[ -]", "", match.group())):
            yield match


def mask_pan(value: Any) -> str:
    """A card number as first 6 and last 4 digits (what PCI DSS lets us show); anything
    else marked `pan` as ••••."""
    digits = re.sub(r"[ -]", "", str(value)) if isinstance(value, str | int) else ""
    if digits.isdigit() and 13 <= len(digits) <= 19 and not isinstance(value, bool):
        return digits[:6] + "•" * (len(digits) - 10) + digits[-4:]
    return MASK


def mask_value(value: Any, mark: str) -> str:
    return mask_pan(value) if mark == PAN else MASK


def mask_text(text: str) -> str:
    """`text` with Luhn-valid card-like numbers and email addresses masked (receivers'
    answers, which no schema describes)."""
    if "@" in text:
        text = EMAIL.sub(lambda m: MASK + "@" + m.group(1), text)
    # str.count runs at memory speed, the regex at ~30 ns a character: most answers ("ok",
    # {"received": true}) hold fewer than 13 digits and skip it.
    if sum(text.count(digit) for digit in "0123456789") < 13:
        return text
    return PAN_LIKE.sub(_mask_if_pan, text)


def _mask_if_pan(match: re.Match) -> str:
    found = match.group()
    return mask_pan(found) if luhn_valid(re.sub(r"[ -]", "", found)) else found


def _mark(schema: Any) -> str | None:
    if isinstance(schema, dict):
        mark = schema.get("x-sensitive")
        if mark in MARKS:
            return mark
    return None


def _child_schema(schema: Any, key: str | int) -> Any:
    """The subschema that describes `key` of an object (or an item of an array)."""
    if not isinstance(schema, dict):
        return None
    if isinstance(key, int):
        items = schema.get("items")
        return items if isinstance(items, dict) else None
    properties = schema.get("properties")
    if isinstance(properties, dict) and key in properties:
        return properties[key]
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def has_marks(schema: Any) -> bool:
    """Whether any field of the schema is marked sensitive."""
    if isinstance(schema, dict):
        return _mark(schema) is not None or any(has_marks(v) for v in schema.values())
    if isinstance(schema, list):
        return any(has_marks(v) for v in schema)
    return False


def split_sensitive(schema: Any, data: dict) -> tuple[dict, list[list]]:
    """(data with every marked value masked, [[path, value], ...] of the marked values)."""
    found: list[list] = []

    def walk(node_schema: Any, value: Any, path: list) -> Any:
        mark = _mark(node_schema)
        if mark is not None and path:
            found.append([list(path), value])
            return mask_value(value, mark)
        if isinstance(value, dict):
            return {
                k: walk(_child_schema(node_schema, k), v, [*path, k]) if node_schema else v
                for k, v in value.items()
            }
        if isinstance(value, list) and node_schema:
            return [walk(_child_schema(node_schema, i), v, [*path, i]) for i, v in enumerate(value)]
        return value

    if not has_marks(schema):
        return data, []
    return walk(schema, data, []), found


def restore(masked: dict, values: list[list]) -> dict:
    """The payload as it came: the marked values put back where they were taken from."""
    if not values:
        return masked
    data = copy.deepcopy(masked)
    for path, value in values:
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return data


def path_text(path: list) -> str:
    """`data.card.number`, `data.items[2].note`: never the value itself."""
    text = "data"
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else f".{key}"
    return mask_text(text)  # a key can itself be a card number


def find_unmarked_pan(schema: Any, data: dict) -> str | None:
    """The JSON path of the first Luhn-valid card-like number outside a `pan` field, if any
    (strings anywhere in them, integers whole)."""

    def walk(node_schema: Any, value: Any, path: list) -> list | None:
        if _mark(node_schema) == PAN:
            return None
        if isinstance(value, dict):
            for k, v in value.items():
                hit = walk(_child_schema(node_schema, k), v, [*path, k])
                if hit is not None:
                    return hit
        elif isinstance(value, list):
            for i, v in enumerate(value):
                hit = walk(_child_schema(node_schema, i), v, [*path, i])
                if hit is not None:
                    return hit
        elif isinstance(value, str) and len(value) >= 13:
            if next(_pan_digits(value), None) is not None:
                return path
        elif (
            isinstance(value, int)
            and not isinstance(value, bool)
            and value >= 10**12
            and next(_pan_digits(str(value)), None) is not None
        ):
            return path
        return None

    hit = walk(schema, data, [])
    return None if hit is None else path_text(hit)


def dumps_values(values: list[list]) -> str:
    return json.dumps(values, separators=(",", ":"), ensure_ascii=False)


def loads_values(text: str) -> list[list]:
    return json.loads(text)
