"""The event every benchmark sends (the catalog's example of transaction.approved)."""

EVENT_TYPE = "transaction.approved"
PAYLOAD = {
    "transaction_id": "txn_8f2k1",
    "amount": 2599,
    "currency": "EUR",
    "card_brand": "visa",
    "last4": "4242",
    "terminal_id": "term_0193",
    "auth_code": "A1B2C3",
}
