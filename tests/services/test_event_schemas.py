"""Schema checks, violation paths and reasons, and the validator cache (pure functions)."""

from __future__ import annotations

import json

import pytest

from webhook_admin.services import event_schemas as es

MONEY = {
    "type": "object",
    "required": ["amount"],
    "properties": {"amount": {"$ref": "#/$defs/minor"}},
    "$defs": {"minor": {"type": "integer", "minimum": 0}},
}


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ([], "the schema must be a JSON object, got list"),
        ({"$schema": 7}, '"$schema" must be'),
        ({"$schema": "http://json-schema.org/draft-07/schema#"}, "(Draft 2020-12) or left out"),
        ({"type": "object", "required": "amount"}, "schema.required: 'amount' is not of type"),
        ({"type": "array"}, 'the root must describe an object ("type": "object")'),
        (
            {"type": "object", "properties": {"a": {"$ref": "https://127.0.0.1/x.json"}}},
            "only references inside the schema (#...) are allowed",
        ),
        (
            {"type": "object", "properties": {"a": {"$ref": "#/$defs/nothing"}}},
            """schema.properties.a["$ref"]: '#/$defs/nothing' points at nothing""",
        ),
        ({"type": "object", "properties": {"a": {"$ref": "#nope"}}}, "names no $anchor"),
    ],
)
def test_schemas_that_cannot_be_an_event_types_are_refused_with_the_reason(schema, problem):
    problems = es.schema_problems(schema)
    assert any(problem in p for p in problems), problems


def test_a_valid_schema_with_local_references_passes_and_is_followed():
    assert es.schema_problems(MONEY) == []
    assert es.schema_problems(MONEY | {"$schema": es.DRAFT_2020_12 + "#"}) == []
    assert [str(v) for v in es.example_violations(MONEY, {"amount": -1})] == [
        "example.amount: -1 is less than the minimum of 0"
    ]


def test_paths_name_array_items_and_quote_odd_keys():
    assert es.json_path("data", ["lines", 2, "sku"]) == "data.lines[2].sku"
    assert es.json_path("data", ["merchant name"]) == 'data["merchant name"]'


def test_violations_are_capped_at_20_and_say_there_were_more():
    schema = {"type": "object", "properties": {"n": {"type": "array", "items": {"type": "string"}}}}
    compiled = es.compiled("t.cap", json.dumps(schema))
    violations, more = compiled.violations({"n": list(range(25))})
    assert len(violations) == 20 and more
    assert violations[0] == es.Violation("data.n[0]", "0 is not of type 'string'")
    assert es.compiled("t.cap", json.dumps(schema)).violations({"n": ["a"]}) == ([], False)


def test_the_cache_keeps_one_validator_per_schema_text_and_a_new_text_is_a_new_one():
    text = json.dumps(MONEY)
    first = es.compiled("t.cache", text)
    assert es.compiled("t.cache", "".join([text])) is first  # an equal, new str from the DB
    edited = json.dumps(MONEY | {"required": []})
    assert es.compiled("t.cache", edited) is not first
    assert es.compiled("t.cache", edited).violations({})[0] == []
    assert es.compiled("t.none", None) is es.NO_SCHEMA
    assert es.NO_SCHEMA.violations({"anything": 1}) == ([], False)


def test_reasons_never_quote_sensitive_long_or_nested_values():
    schema = {
        "type": "object",
        "properties": {
            "pan": {"type": "integer", "x-sensitive": "pan"},
            "note": {"type": "string", "maxLength": 5},
            "card": {"type": "string"},
        },
    }
    violations, _ = es.compiled("t.mask", json.dumps(schema)).violations(
        {"pan": "4111111111111111", "note": "x" * 500, "card": {"number": "4111111111111111"}}
    )
    assert {v.path: v.reason for v in violations} == {
        "data.card": "the object (1 keys) is not of type 'string'",
        "data.note": "the string (500 characters) is too long",
        "data.pan": "the value (not shown: marked pan) is not of type 'integer'",
    }
