"""JSON Schema (Draft 2020-12) for event types' `data`: checking a schema an admin writes,
checking an example against it, and validating ingested data with compiled validators.

The validators come from `jsonschema` (docs/decisions.md#event-schemas-enforced-at-ingest).
They are cached per event type and schema version, the version being the schema's stored
text: an edit changes the text, so the next ingest compiles the new schema, in every web
process, without a signal between them. Pure functions and a process-local cache: no Flask,
no database."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry

MAX_VIOLATIONS = 20
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
# Longer values are named by their kind in a violation, not echoed (an error answer is no
# place for a 200 KiB string or a whole nested object).
MAX_ECHOED_CHARS = 80
# A schema's $ref may only point inside the schema: an empty registry and no retrieval, so
# validation never fetches anything over the network.
NO_REMOTE_REFS = Registry()
META_VALIDATOR = Draft202012Validator(Draft202012Validator.META_SCHEMA)


@dataclass(frozen=True)
class Violation:
    path: str  # "data.amount", "data.items[2].sku"
    reason: str  # "-5 is less than the minimum of 0"

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"

    def as_json(self) -> dict:
        return {"path": self.path, "reason": self.reason}


def json_path(root: str, parts: Iterable[Any]) -> str:
    """`data.card.last4`, `data.lines[0]`; a key that is not a plain name is quoted:
    `data["merchant name"]`."""
    text = root
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.isidentifier():
            text += f".{part}"
        else:
            text += f"[{json.dumps(part, ensure_ascii=False)}]"
    return text


def _described(instance: Any) -> str:
    if isinstance(instance, dict):
        return f"the object ({len(instance)} keys)"
    if isinstance(instance, list):
        return f"the array ({len(instance)} items)"
    if isinstance(instance, str):
        return f"the string ({len(instance)} characters)"
    return "the value"


def _reason(error) -> str:
    """jsonschema's message, without the value when it is marked sensitive or too long."""
    message = error.message
    shown = repr(error.instance)
    schema = error.schema if isinstance(error.schema, dict) else {}
    if mark := schema.get("x-sensitive"):
        return message.replace(shown, f"the value (not shown: marked {mark})")
    if isinstance(error.instance, dict | list) or len(shown) > MAX_ECHOED_CHARS:
        return message.replace(shown, _described(error.instance))
    return message


def _violations(errors, root: str, limit: int) -> tuple[list[Violation], bool]:
    """The first `limit` errors (in a stable order) and whether there were more."""
    found = list(islice(errors, limit + 1))
    more = len(found) > limit
    found = sorted(found[:limit], key=lambda e: [str(p) for p in e.absolute_path])
    return [Violation(json_path(root, e.absolute_path), _reason(e)) for e in found], more


def schema_problems(schema: Any) -> list[str]:
    """Why `schema` cannot be an event type's data schema; [] when it can."""
    if not isinstance(schema, dict):
        return [f"the schema must be a JSON object, got {type(schema).__name__}"]
    declared = schema.get("$schema")
    if declared is not None and (
        not isinstance(declared, str) or declared.rstrip("#") != DRAFT_2020_12
    ):
        return [f'"$schema" must be {DRAFT_2020_12!r} (Draft 2020-12) or left out']
    violations, more = _violations(META_VALIDATOR.iter_errors(schema), "schema", MAX_VIOLATIONS)
    problems = [str(v) for v in violations]
    if not problems:
        problems = [
            f"{path}: {why}"
            for path, ref in _references(schema, "schema")
            if (why := _reference_problem(schema, ref))
        ]
    if schema.get("type", "object") not in ("object", ["object"]):
        problems.append('schema: the root must describe an object ("type": "object")')
    return problems + (["... and more"] if more else [])


def _reference_problem(schema: dict, ref: str) -> str | None:
    """Why `ref` cannot be followed inside `schema` (validation would fail on it at ingest)."""
    if not ref.startswith("#"):
        return f"only references inside the schema (#...) are allowed, got {ref!r}"
    fragment = ref[1:]
    if fragment and not fragment.startswith("/"):  # a plain-name fragment: an $anchor
        if fragment not in _anchors(schema):
            return f"{ref!r} names no $anchor of the schema"
        return None
    target: Any = schema
    for part in [p for p in fragment.split("/") if p]:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(target, list) and part.isdigit() and int(part) < len(target):
            target = target[int(part)]
        elif isinstance(target, dict) and part in target:
            target = target[part]
        else:
            return f"{ref!r} points at nothing in the schema"
    return None


def _anchors(node: Any) -> set[str]:
    found = set()
    if isinstance(node, dict):
        if isinstance(node.get("$anchor"), str):
            found.add(node["$anchor"])
        for value in node.values():
            found |= _anchors(value)
    elif isinstance(node, list):
        for value in node:
            found |= _anchors(value)
    return found


def _references(node: Any, path: str):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("$ref", "$dynamicRef") and isinstance(value, str):
                yield json_path(path, [key]), value
            else:
                yield from _references(value, json_path(path, [key]))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _references(value, json_path(path, [index]))


def example_violations(schema: dict | None, example: Any) -> list[Violation]:
    """Why `example` does not match `schema` (paths from `example`); [] when it does."""
    if schema is None:
        return []
    errors = Draft202012Validator(schema, registry=NO_REMOTE_REFS).iter_errors(example)
    return _violations(errors, "example", MAX_VIOLATIONS)[0]


@dataclass(frozen=True)
class CompiledSchema:
    schema: dict | None
    validator: Draft202012Validator | None

    def violations(self, data: dict) -> tuple[list[Violation], bool]:
        """The first MAX_VIOLATIONS problems of `data` and whether there were more; a type
        without a schema accepts any object."""
        if self.validator is None:
            return [], False
        return _violations(self.validator.iter_errors(data), "data", MAX_VIOLATIONS)


NO_SCHEMA = CompiledSchema(None, None)


@lru_cache(maxsize=512)
def compiled(type_name: str, schema_text: str | None) -> CompiledSchema:
    """The type's schema parsed and its validator built, once per (type, version). The
    stored schema was checked when it was saved; one saved before that check is used as
    it is (an invalid keyword value then fails the ingest, loudly, not silently)."""
    schema = json.loads(schema_text) if schema_text else None
    if not isinstance(schema, dict):
        return NO_SCHEMA
    return CompiledSchema(schema, Draft202012Validator(schema, registry=NO_REMOTE_REFS))
