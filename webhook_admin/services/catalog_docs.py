"""The event catalog as documentation for receivers' developers: per event type, when it
fires, a field table generated from its JSON Schema, and the full request a receiver gets
(headers and envelope, signed with a published example secret). Shown at /docs/events and
exported by `flask catalog docs --out DIR`."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..models import Category, EventType
from ..shared.envelope import encode, envelope
from ..shared.headers import USER_AGENT
from ..shared.signing import sign_with_secrets

# The Standard Webhooks documentation's example secret: published on purpose, so a
# developer can check their signature verification against the example below.
EXAMPLE_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105 (public on purpose)
EXAMPLE_TIMESTAMP = 1795788192  # 2026-11-27T14:03:12Z
MISSING = object()


@dataclass(frozen=True)
class FieldRow:
    name: str  # "card.brand", "changed[]"
    type: str  # "string", "integer", "array of string", "object"
    required: bool
    description: str
    example: str  # compact JSON, or ""
    deprecated: bool = False
    sensitive: str | None = None  # "pan" / "pii"

    @property
    def depth(self) -> int:
        return self.name.count(".") + self.name.count("[]")


@dataclass(frozen=True)
class ReceiverExample:
    headers: dict[str, str]
    body: str  # the exact bytes sent (compact JSON), as text
    pretty_body: str


@dataclass(frozen=True)
class TypeDoc:
    name: str
    category: str
    description: str
    trigger_condition: str
    archived: bool
    deprecated: bool
    has_schema: bool
    fields: list[FieldRow]
    example: ReceiverExample
    schema: dict | None = field(repr=False, default=None)

    @property
    def anchor(self) -> str:
        return "event-" + self.name.replace(".", "-")


def _resolve(node: Any, root: dict) -> Any:
    """A local `$ref` (#/$defs/money) replaced by what it points at, merged with siblings."""
    seen = 0
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and seen < 16:
        ref = node["$ref"]
        if not ref.startswith("#"):
            return node
        target: Any = root
        for part in [p for p in ref[1:].split("/") if p]:
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part, {}) if isinstance(target, dict) else {}
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        seen += 1
    return node


def _type_label(node: dict, root: dict) -> str:
    kind = node.get("type")
    if isinstance(kind, list):
        label = " or ".join(kind)
    elif kind:
        label = kind
    elif "const" in node:
        label = "constant"
    elif "enum" in node:
        label = "enum"
    elif any(k in node for k in ("anyOf", "oneOf")):
        options = node.get("anyOf") or node.get("oneOf")
        label = " or ".join(_type_label(_resolve(o, root), root) for o in options)
    else:
        label = "any"
    if kind == "array" and isinstance(node.get("items"), dict):
        label = f"array of {_type_label(_resolve(node['items'], root), root)}"
    if node.get("format"):
        label += f" ({node['format']})"
    return label


def _constraints(node: dict) -> list[str]:
    """What the schema checks, in words a developer reads at a glance."""
    said = []
    if "enum" in node:
        said.append("One of: " + ", ".join(json.dumps(v, ensure_ascii=False) for v in node["enum"]))
    if "const" in node:
        said.append(f"Always {json.dumps(node['const'], ensure_ascii=False)}.")
    if "pattern" in node:
        said.append(f"Pattern `{node['pattern']}`.")
    for key, words in (
        ("minimum", "At least"),
        ("exclusiveMinimum", "More than"),
        ("maximum", "At most"),
        ("exclusiveMaximum", "Less than"),
        ("minLength", "At least {} characters"),
        ("maxLength", "At most {} characters"),
        ("minItems", "At least {} items"),
        ("maxItems", "At most {} items"),
    ):
        if key in node:
            text = words.format(node[key]) if "{}" in words else f"{words} {node[key]}"
            if node[key] == 1:  # "At least 1 character", not "1 characters"
                text = text.removesuffix("s")
            said.append(text + ".")
    if node.get("uniqueItems"):
        said.append("No duplicates.")
    if node.get("x-sensitive") == "pan":
        said.append("Card data: stored encrypted, masked on every page.")
    elif node.get("x-sensitive") == "pii":
        said.append("Personal data: stored encrypted, masked on every page.")
    return said


def _example_text(node: dict, value: Any) -> str:
    if value is MISSING:
        if node.get("examples"):
            value = node["examples"][0]
        elif "const" in node:
            value = node["const"]
        elif node.get("enum"):
            value = node["enum"][0]
        else:
            return ""
    if isinstance(value, dict | list):
        return "" if value else json.dumps(value)
    return json.dumps(value, ensure_ascii=False)


def field_rows(schema: dict | None, example: Any) -> list[FieldRow]:
    """One row per property, nested objects (and objects in arrays) flattened with dotted
    names, in the schema's order."""
    if not schema:
        return []
    rows: list[FieldRow] = []

    def walk(node: dict, prefix: str, sample: Any, depth: int) -> None:
        if depth > 8:
            return
        required = set(node.get("required") or [])
        for name, prop in (node.get("properties") or {}).items():
            prop = _resolve(prop, schema)
            if not isinstance(prop, dict):
                continue
            path = f"{prefix}.{name}" if prefix else name
            value = sample.get(name, MISSING) if isinstance(sample, dict) else MISSING
            text = " ".join([prop.get("description", "").strip(), *_constraints(prop)]).strip()
            rows.append(
                FieldRow(
                    path,
                    _type_label(prop, schema),
                    name in required,
                    text,
                    _example_text(prop, value),
                    bool(prop.get("deprecated")),
                    prop.get("x-sensitive"),
                )
            )
            if "properties" in prop:
                walk(prop, path, None if value is MISSING else value, depth + 1)
            items = _resolve(prop.get("items"), schema)
            if isinstance(items, dict) and "properties" in items:
                first = value[0] if isinstance(value, list) and value else None
                walk(items, path + "[]", first, depth + 1)

    walk(_resolve(schema, schema), "", example, 0)
    return rows


def receiver_example(event_type: EventType) -> ReceiverExample:
    """The request a receiver gets for the type's example, signed with EXAMPLE_SECRET."""
    event_id = "evt_" + event_type.name.replace(".", "_") + "_example"
    timestamp = datetime.fromtimestamp(EXAMPLE_TIMESTAMP, UTC).replace(tzinfo=None)
    value = envelope(event_id, event_type.name, timestamp, event_type.example_payload or {})
    body = encode(value)
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": event_id,
        "webhook-timestamp": str(EXAMPLE_TIMESTAMP),
        "webhook-signature": sign_with_secrets(
            [EXAMPLE_SECRET], event_id, EXAMPLE_TIMESTAMP, body.encode()
        ),
    }
    pretty = json.dumps(value, indent=2, ensure_ascii=False)
    return ReceiverExample(headers, body, pretty)


def type_doc(event_type: EventType) -> TypeDoc:
    schema = event_type.json_schema
    return TypeDoc(
        name=event_type.name,
        category=event_type.category.name,
        description=event_type.description or "",
        trigger_condition=event_type.trigger_condition or "",
        archived=event_type.archived,
        deprecated=bool(isinstance(schema, dict) and schema.get("deprecated")),
        has_schema=schema is not None,
        fields=field_rows(schema, event_type.example_payload),
        example=receiver_example(event_type),
        schema=schema,
    )


def catalog_docs(categories: list[Category]) -> list[tuple[Category, list[TypeDoc]]]:
    """Every category with its types' docs, archived types included (marked)."""
    return [(c, [type_doc(t) for t in c.event_types]) for c in categories]


def schema_file(doc: TypeDoc) -> dict:
    """The type's schema as a standalone file: its draft, title and description set."""
    schema = copy.deepcopy(doc.schema) if doc.schema is not None else {"type": "object"}
    schema.setdefault("$schema", "https://json-schema.org/draft/2020-12/schema")
    schema.setdefault("$id", f"{doc.name}.schema.json")
    schema.setdefault("title", doc.name)
    if doc.description:
        schema.setdefault("description", doc.description)
    return schema


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(docs: list[tuple[Category, list[TypeDoc]]]) -> str:
    """The whole catalog as one Markdown document (GitHub-flavoured tables)."""
    out = [
        "# SoftPOS webhook events",
        "",
        "Every webhook is an HTTPS POST of a JSON envelope `{id, type, timestamp, data}`, "
        "signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`, "
        "`webhook-signature`). The examples are signed with the example secret "
        f"`{EXAMPLE_SECRET}`; verify over the raw body bytes you receive.",
        "",
    ]
    for category, types in docs:
        out += [f"## {category.name}", ""]
        if category.description:
            out += [category.description, ""]
        for doc in types:
            out += _markdown_type(doc)
    return "\n".join(out).rstrip() + "\n"


def _markdown_type(doc: TypeDoc) -> list[str]:
    marks = [m for m, on in (("deprecated", doc.deprecated), ("archived", doc.archived)) if on]
    out = [f"### `{doc.name}`" + (f" ({', '.join(marks)})" if marks else ""), ""]
    if doc.archived:
        out += ["> Archived: SoftPOS no longer sends this event type.", ""]
    if doc.deprecated:
        out += ["> Deprecated: still sent, but will be removed; stop relying on it.", ""]
    if doc.description:
        out += [doc.description, ""]
    out += ["**When it fires:** " + (doc.trigger_condition or "not documented yet."), ""]
    if not doc.has_schema:
        out += ["This type has no schema: `data` may be any JSON object.", ""]
    elif doc.fields:
        out += [
            "| Field | Type | Required | Description | Example |",
            "| --- | --- | --- | --- | --- |",
        ]
        for row in doc.fields:
            name = f"`{row.name}`" + (" (deprecated)" if row.deprecated else "")
            example = f"`{row.example}`" if row.example else ""
            out.append(
                f"| {name} | {_cell(row.type)} | {'yes' if row.required else 'no'} | "
                f"{_cell(row.description)} | {_cell(example)} |"
            )
        out.append("")
    out += [
        f"JSON Schema: [`schemas/{doc.name}.schema.json`](schemas/{doc.name}.schema.json)",
        "",
        "The envelope your endpoint receives:",
        "",
        "```json",
        doc.example.pretty_body,
        "```",
        "",
        "The request as sent (the signature covers these exact body bytes):",
        "",
        "```http",
        "POST /your/webhook/path HTTP/1.1",
        *[f"{name}: {value}" for name, value in doc.example.headers.items()],
        "",
        doc.example.body,
        "```",
        "",
    ]
    return out
