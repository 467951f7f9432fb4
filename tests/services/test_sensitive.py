"""Schema marks, masking, the PAN guard and the text scan of receivers' answers."""

from __future__ import annotations

from webhook_admin.services import sensitive

SCHEMA = {
    "type": "object",
    "properties": {
        "card": {
            "type": "object",
            "properties": {
                "number": {"type": "string", "x-sensitive": "pan"},
                "cardholder_name": {"type": "string", "x-sensitive": "pii"},
            },
        },
        "contacts": {"type": "array", "items": {"type": "string", "x-sensitive": "pii"}},
        "order_no": {"type": "string"},
    },
}
PAN = "4111 1111 1111 1111"


def test_luhn_accepts_test_cards_and_refuses_one_digit_off():
    assert sensitive.luhn_valid("4111111111111111")
    assert sensitive.luhn_valid("5555555555554444")
    assert not sensitive.luhn_valid("4111111111111112")


def test_marked_values_are_masked_and_taken_out_with_their_paths():
    data = {"card": {"number": PAN, "cardholder_name": "Jane Roe"}, "contacts": ["a@b.io"]}
    masked, values = sensitive.split_sensitive(SCHEMA, data)
    assert masked == {
        "card": {"number": "411111••••••1111", "cardholder_name": "••••"},
        "contacts": ["••••"],
    }
    assert values == [
        [["card", "number"], PAN],
        [["card", "cardholder_name"], "Jane Roe"],
        [["contacts", 0], "a@b.io"],
    ]
    assert sensitive.restore(masked, values) == data
    assert data["card"]["number"] == PAN  # the input is not changed


def test_a_schema_without_marks_leaves_data_alone():
    data = {"card": {"number": "x"}}
    assert sensitive.split_sensitive({"type": "object"}, data) == (data, [])
    assert sensitive.split_sensitive(None, data) == (data, [])


def test_pan_guard_finds_a_card_number_outside_pan_fields_and_names_only_its_path():
    assert sensitive.find_unmarked_pan(SCHEMA, {"card": {"number": PAN}}) is None
    path = sensitive.find_unmarked_pan(SCHEMA, {"order_no": "ref 4111-1111-1111-1111 ok"})
    assert path == "data.order_no"
    assert sensitive.find_unmarked_pan(None, {"items": [{"n": 4111111111111111}]}) == (
        "data.items[0].n"
    )
    # In a pii field it is still outside a pan field.
    assert sensitive.find_unmarked_pan(SCHEMA, {"card": {"cardholder_name": PAN}}) == (
        "data.card.cardholder_name"
    )


def test_pan_guard_lets_numbers_through_that_fail_luhn_or_are_too_short():
    assert sensitive.find_unmarked_pan(None, {"a": "4111111111111112", "b": 411111111111}) is None
    assert sensitive.find_unmarked_pan(None, {"a": "12345678901234567890123"}) is None


def test_a_key_holding_a_card_number_is_masked_in_the_path():
    path = sensitive.find_unmarked_pan(None, {"4111111111111111": "4111111111111111"})
    assert "4111111111111111" not in path


def test_text_scan_masks_luhn_valid_numbers_and_emails_only():
    text = "card 4111 1111 1111 1111, ref 4111111111111112, mail jane.roe@example.org"
    assert sensitive.mask_text(text) == (
        "card 411111••••••1111, ref 4111111111111112, mail ••••@example.org"
    )
