"""The event every benchmark sends (the catalog's example of transaction.approved: it
validates against the seeded schema, which ingest enforces)."""

EVENT_TYPE = "transaction.approved"
PAYLOAD = {
    "transaction_id": "txn_8f2k1",
    "merchant_id": "m_1042",
    "terminal_id": "term_0193",
    "amount": 2599,
    "currency": "EUR",
    "card": {"brand": "visa", "last4": "4242", "entry_mode": "contactless"},
    "auth_code": "A1B2C3",
    "approved_at": "2026-11-27T14:03:12Z",
}
